"""The Prometheus text format (0.0.4) written directly for large families of one shape, and ``exposition``,
which serves a registry with those families written that way and every other family by prometheus_client.

prometheus_client's ``generate_latest`` spends about 6 µs on a sample line (it validates and escapes every
label name again, sorts each sample's labels, formats each value through a float): about 28 ms of a 45 ms
scrape for the node plugin's 5000 per-volume samples at 1000 published volumes. ``TextFamily.text`` writes
the same bytes in about a fifth of that: label names are checked once per family, label values scanned once
per family for the three characters to escape, and each line is one ``str.format``. A TextFamily's ``samples`` are built
only when something reads them (``generate_latest``, ``get_sample_value``, the OpenMetrics exposition), so the
family is the same whichever way it is exposed. Why, and the measurements: docs/observability.md, "Text
written by hand"."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_EXACT_INT = 2**53  # every int below it is a float exactly, and repr(float(n)) is f"{n}.0"
_PLAIN_DIGITS = 6  # floatToGoString writes an integer part of more digits with an exponent, like Go
_EXPONENTS = tuple(f"e+{power:02d}" for power in range(16))
_ESCAPED = ("\\", '"', "\n")


def escape_label_value(value: str) -> str:
    """A label value as the text format quotes it: backslash, double quote and newline escaped."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def escape_help(documentation: str) -> str:
    """HELP text as the text format writes it: backslash and newline escaped (a quote is left alone)."""
    return documentation.replace("\\", r"\\").replace("\n", r"\n")


def go_float(value: float) -> str:
    """``floatToGoString(value)`` (1048576 -> ``1.048576e+06``, 40 -> ``40.0``), without its float round trip
    for the non-negative ints below 2**53 that counters and limits are; anything else goes to it."""
    if type(value) is int and 0 <= value < _EXACT_INT:
        digits = str(value)
        if len(digits) <= _PLAIN_DIGITS:
            return digits + ".0"
        tail = digits[1:].rstrip("0")
        return (f"{digits[0]}.{tail}" if tail else digits[0]) + _EXPONENTS[len(digits) - 1]
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


class TextFamily(Metric):
    """A gauge or counter family whose series all have the same label names: ``series`` holds each series'
    label values (in ``labels``' order), ``values`` its value. ``text`` writes what ``generate_latest`` writes
    for the same family built with GaugeMetricFamily or CounterMetricFamily (which add no ``_created``)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        typ: str,
        labels: Sequence[str],
        *,
        series: Sequence[Sequence[str]],
        values: Sequence[float],
    ) -> None:
        if typ not in ("gauge", "counter"):
            raise ValueError(f"{name}: a TextFamily is a gauge or a counter, not a {typ}")
        name = name.removesuffix("_total") if typ == "counter" else name
        if not _METRIC_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a metric name the text format writes unquoted")
        for label in labels:
            if not _LABEL_NAME.fullmatch(label):
                raise ValueError(f"{name}: {label!r} is not a label name the text format writes unquoted")
        if len(set(labels)) != len(labels):
            raise ValueError(f"{name}: a label name is repeated in {list(labels)}")
        if len(series) != len(values):
            raise ValueError(f"{name}: {len(series)} series but {len(values)} values")
        super().__init__(name, documentation, typ)  # sets samples to [] through the setter below
        self._built: list[Sample] | None = None  # the samples, once something read them
        self._text: str | None = None  # written once: the agent yields one family to every scrape of a cycle
        self._labels = tuple(labels)
        self._series = series
        self._values = values
        self.sample_name = name + "_total" if typ == "counter" else name

    @property  # Metric's plain attribute, here built from series and values when first read
    def samples(self) -> list[Sample]:
        if self._built is None:
            self._built = [
                Sample(self.sample_name, dict(zip(self._labels, labels, strict=True)), value)
                for labels, value in zip(self._series, self._values, strict=True)
            ]
        return self._built

    @samples.setter
    def samples(self, samples: list[Sample]) -> None:
        self._built = samples

    def text(self) -> str:
        """HELP, TYPE and a line per series, labels sorted by name, as prometheus_client writes them."""
        if self._built is not None:  # read, and maybe changed (add_sample): the samples are the family now
            return generate_latest(_Families([self])).decode()
        if self._text is None:
            self._text = self._write()
        return self._text

    def _write(self) -> str:
        head = f"# HELP {self.sample_name} {escape_help(self.documentation)}\n# TYPE {self.sample_name} {self.type}\n"
        if not self._labels:
            return head + "".join([f"{self.sample_name} {go_float(value)}\n" for value in self._values])
        series = self._series
        every_value = "".join([text for labels in series for text in labels])
        if any(character in every_value for character in _ESCAPED):  # once a family: LVM names need none
            series = [tuple(map(escape_label_value, labels)) for labels in series]
        order = sorted(range(len(self._labels)), key=self._labels.__getitem__)
        fields = ",".join(f'{self._labels[index]}="{{{index}}}"' for index in order)
        line = (self.sample_name + "{{" + fields + "}} ").format  # name{lv="{1}",vg="{0}"} : values by position
        lines = [line(*labels) + go_float(value) + "\n" for labels, value in zip(series, self._values, strict=True)]
        return head + "".join(lines)


class _Families(Collector):
    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def exposition(registry: Collector) -> bytes:
    """``generate_latest(registry)``, with each TextFamily written by its ``text`` in its place."""
    parts: list[bytes] = []
    plain: list[Metric] = []
    for family in registry.collect():
        if isinstance(family, TextFamily):
            if plain:
                parts.append(generate_latest(_Families(plain)))
                plain = []
            parts.append(family.text().encode())
        else:
            plain.append(family)
    if plain:
        parts.append(generate_latest(_Families(plain)))
    return b"".join(parts)
