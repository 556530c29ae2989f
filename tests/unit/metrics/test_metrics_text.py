"""Text written by hand (metrics.text): the same bytes as prometheus_client's generate_latest for the same
family, label values escaped as the text format 0.0.4 requires, and parsed back to the same values."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from localcsi.metrics.text import TextFamily, escape_label_value, exposition, go_float

pytestmark = pytest.mark.unit

Rows = Sequence[tuple[Sequence[str], float]]
AWKWARD = ['say "hi"', "back\\slash", "two\nlines", '\\"', "\\n", "{a=b}, c", "é ☃ \t", ""]


class Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def text_family(name: str, documentation: str, typ: str, labels: Sequence[str], rows: Rows) -> TextFamily:
    return TextFamily(name, documentation, typ, labels, series=[row for row, _ in rows], values=[v for _, v in rows])


def library_family(name: str, documentation: str, typ: str, labels: Sequence[str], rows: Rows) -> Metric:
    """The same family as prometheus_client's own family classes build it."""
    family: GaugeMetricFamily | CounterMetricFamily
    if typ == "counter":
        family = CounterMetricFamily(name, documentation, labels=labels)
    else:
        family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, value in rows:
        family.add_metric(values, value)
    return family


def library_text(*families: Metric) -> str:
    return generate_latest(Families(families)).decode()


def float_to_go_string(value: float) -> str:
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]  # prometheus_client leaves it untyped


def openmetrics_latest(collector: Collector) -> bytes:
    return bytes(openmetrics.generate_latest(collector))  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("plain-name_1.2", "plain-name_1.2"),
        ('say "hi"', r"say \"hi\""),
        ("back\\slash", r"back\\slash"),
        ("two\nlines", r"two\nlines"),
        ('\\"', r"\\\""),  # a backslash then a quote: each escaped once
        ("\\n", r"\\n"),  # a backslash and an n, not a newline
        ("tab\tand\rcr", "tab\tand\rcr"),  # only those three are escaped
    ],
)
def test_label_values_escape_backslash_quote_and_newline(value: str, escaped: str) -> None:
    assert escape_label_value(value) == escaped


@pytest.mark.parametrize(
    "value",
    [0, 1, 40, 999_999, 10**6, 1_048_576, 1_000_001, 8_388_608, 10**15, 2**53 - 1, 2**53, 2**53 + 1, 10**16,
     2**64 - 1, 10**30, -1, -(10**7), True, 0.5, 1.0, 1048576.0, 1e-07, 1e22, -0.0,
     math.inf, -math.inf, math.nan],
)  # fmt: skip
def test_values_are_written_as_float_to_go_string_writes_them(value: float) -> None:
    assert go_float(value) == float_to_go_string(value)


@given(st.integers(min_value=-(2**70), max_value=2**70) | st.floats())
def test_any_number_is_written_as_float_to_go_string_writes_it(value: float) -> None:
    assert go_float(value) == float_to_go_string(value)


LABEL_SETS = [(), ("vg",), ("vg", "lv"), ("vg", "lv", "direction", "unit"), ("z", "a", "m")]


@st.composite
def families(draw: st.DrawFn) -> tuple[str, str, str, tuple[str, ...], Rows]:
    typ = draw(st.sampled_from(["gauge", "counter"]))
    name = draw(st.sampled_from(["localcsi_x", "localcsi_volume_read_bytes", "localcsi_volume_reads_total"]))
    labels = draw(st.sampled_from(LABEL_SETS))
    documentation = draw(st.text(max_size=30))
    value = st.integers(min_value=0, max_value=2**64) | st.floats(allow_nan=False)
    row = st.tuples(st.tuples(*(st.text(max_size=12) for _ in labels)), value)
    rows = draw(st.lists(row, max_size=1 if not labels else 8))
    return name, documentation, typ, labels, rows


@given(families())
def test_a_text_family_writes_what_generate_latest_writes_for_the_same_family(
    family: tuple[str, str, str, tuple[str, ...], Rows],
) -> None:
    assert text_family(*family).text() == library_text(library_family(*family))
    assert text_family(*family) == library_family(*family), "the same name, type, help and samples"


def test_awkward_label_values_are_written_as_prometheus_client_writes_them_and_parse_back() -> None:
    rows = [((value, f"lv-{index}"), index * 1_000_003) for index, value in enumerate(AWKWARD)]
    family = text_family("localcsi_t", 'Help with a \\ and a "quote"\nand a line.', "counter", ("vg", "lv"), rows)
    text = family.text()
    assert text == library_text(library_family("localcsi_t", family.documentation, "counter", ("vg", "lv"), rows))
    (parsed,) = text_string_to_metric_families(text)
    assert (parsed.name, parsed.type, parsed.documentation) == ("localcsi_t", "counter", family.documentation)
    assert [(sample.name, sample.labels, sample.value) for sample in parsed.samples] == [
        ("localcsi_t_total", {"vg": value, "lv": f"lv-{index}"}, float(index * 1_000_003))
        for index, value in enumerate(AWKWARD)
    ]


def test_a_counter_has_no_created_samples_in_either_exposition() -> None:
    family = TextFamily("localcsi_c_total", "Counted.", "counter", ("lv",), series=[("a",)], values=[3])
    assert family.name == "localcsi_c" and [sample.name for sample in family.samples] == ["localcsi_c_total"]
    assert "_created" not in family.text()
    expected = library_family("localcsi_c", "Counted.", "counter", ("lv",), [(("a",), 3)])
    assert openmetrics_latest(Families([family])) == openmetrics_latest(Families([expected]))


def test_exposition_writes_every_family_in_its_place_as_generate_latest_does() -> None:
    rows = [((vg, "x"), 7) for vg in AWKWARD]

    def registry(text: bool) -> CollectorRegistry:
        registry = CollectorRegistry()
        Gauge("localcsi_first", "Before.", ["a"], registry=registry).labels('q"').set(1.5)
        make = text_family if text else library_family
        registry.register(Families([make("localcsi_mid", "Middle.", "gauge", ("vg", "lv"), rows)]))
        registry.register(Families([CounterMetricFamily("localcsi_last", "After.", 2, created=1.7e9)]))
        registry.register(Families([make("localcsi_end", "End.", "counter", ("vg", "lv"), rows)]))
        return registry

    served = exposition(registry(text=True))
    assert served == generate_latest(registry(text=False))
    assert served == generate_latest(registry(text=True)), "read through samples, the same family"
    names = [family.name for family in text_string_to_metric_families(served.decode())]
    assert names == ["localcsi_first", "localcsi_mid", "localcsi_last", "localcsi_last_created", "localcsi_end"]


def test_a_family_whose_samples_were_changed_is_written_from_them() -> None:
    family = TextFamily("localcsi_g", "G.", "gauge", ("lv",), series=[("a",)], values=[1])
    family.add_sample("localcsi_g", {"lv": "b"}, 2)
    head = "# HELP localcsi_g G.\n# TYPE localcsi_g gauge\n"
    assert family.text() == head + 'localcsi_g{lv="a"} 1.0\nlocalcsi_g{lv="b"} 2.0\n'


@pytest.mark.parametrize(
    ("name", "typ", "labels", "values"),
    [
        ("localcsi-x", "gauge", (), []),  # a name the text format would have to quote or rewrite
        ("localcsi_x", "gauge", ("a.b",), []),
        ("localcsi_x", "gauge", ("1a",), []),
        ("localcsi_x", "gauge", ("vg", "vg"), []),
        ("localcsi_x", "histogram", (), []),
        ("localcsi_x", "gauge", ("vg",), [1.0]),  # a value without its series
    ],
)
def test_what_text_family_cannot_write_exactly_is_refused(
    name: str, typ: str, labels: tuple[str, ...], values: list[float]
) -> None:
    with pytest.raises(ValueError, match=name):
        TextFamily(name, "x", typ, labels, series=[], values=values)
