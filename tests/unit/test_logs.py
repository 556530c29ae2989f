from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from localcsi import logs

pytestmark = pytest.mark.unit

log = logging.getLogger("localcsi.test")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def json_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_json_line_has_core_keys_and_fields(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json")
    before = datetime.now(UTC)

    log.info("created %s", "pvc-1", extra=logs.fields(volume="pvc-1", size_bytes=1 << 30))

    [entry] = json_lines(capsys)
    assert entry["level"] == "info"
    assert entry["logger"] == "localcsi.test"
    assert entry["msg"] == "created pvc-1"
    assert entry["volume"] == "pvc-1"
    assert entry["size_bytes"] == 1 << 30
    assert "exc" not in entry
    stamp = str(entry["ts"])
    assert stamp.endswith("Z")
    parsed = datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= parsed <= datetime.now(UTC)


def test_extra_fields_dict_form_equals_helper(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json")
    log.info("x", extra={"fields": {"node": "n1"}})
    assert json_lines(capsys)[0]["node"] == "n1"


def test_field_named_like_a_core_key_does_not_hide_it(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json")
    log.info("real message", extra=logs.fields(msg="from field", level="from field"))
    [entry] = json_lines(capsys)
    assert entry["msg"] == "real message"
    assert entry["level"] == "info"
    assert entry["field_msg"] == "from field"
    assert entry["field_level"] == "from field"


def test_unserialisable_field_is_written_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json")
    log.info("x", extra=logs.fields(path=Path("/dev/vg0/lv1")))
    assert json_lines(capsys)[0]["path"] == "/dev/vg0/lv1"


def test_exception_traceback_in_exc_field(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json")
    try:
        raise ValueError("bad size")
    except ValueError:
        log.exception("create failed")
    [entry] = json_lines(capsys)
    assert entry["level"] == "error"
    assert entry["msg"] == "create failed"
    exc = str(entry["exc"])
    assert exc.startswith("Traceback (most recent call last):")
    assert exc.rstrip().endswith("ValueError: bad size")


def test_level_filters_records(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("warning", "json")
    log.info("hidden")
    log.warning("shown")
    assert [entry["msg"] for entry in json_lines(capsys)] == ["shown"]

    logs.configure("debug", "json")
    log.debug("now shown")
    assert [entry["level"] for entry in json_lines(capsys)] == ["debug"]


def test_configure_again_replaces_its_handler(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json")
    logs.configure("info", "json")
    log.info("once")
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_text_format(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "text")
    try:
        raise RuntimeError("lvm hung")
    except RuntimeError:
        log.error("vg scan", extra=logs.fields(vg="vg0", reason="two words", empty=""), exc_info=True)
    first, *rest = capsys.readouterr().err.splitlines()
    assert first.endswith(' ERROR   localcsi.test: vg scan vg=vg0 reason="two words" empty=""')
    assert datetime.fromisoformat(first.split(" ", 1)[0]).utcoffset() == timedelta(0)
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "RuntimeError: lvm hung"


def test_python_warnings_are_logged(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json")
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # not "error", whatever the runner's filters say
        warnings.warn("old flag", UserWarning, stacklevel=1)
    [entry] = json_lines(capsys)
    assert entry["logger"] == "py.warnings"
    assert "old flag" in str(entry["msg"])


@pytest.mark.parametrize(("level", "fmt"), [("verbose", "json"), ("info", "yaml"), ("INFO", "json")])
def test_configure_rejects_unknown_values(level: str, fmt: str) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        logs.configure(level, fmt)
