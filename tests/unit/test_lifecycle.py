from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

import localcsi
from localcsi.lifecycle import Lifecycle

pytestmark = pytest.mark.unit

SRC_DIR = Path(localcsi.__file__).resolve().parents[1]
TIMEOUT = 10.0

SERVER_SCRIPT = """
import logging, sys, threading
from localcsi import logs
from localcsi.lifecycle import Lifecycle

logs.configure("info", "json")
with Lifecycle() as lifecycle:
    print("ready", flush=True)
    lifecycle.wait()
    print("draining", flush=True)
    if "--hang" in sys.argv:
        threading.Event().wait()  # a shutdown that never finishes: only a second signal gets out
logging.getLogger("server").info("clean exit")
"""

Spawn = Callable[..., "subprocess.Popen[str]"]


def test_signal_sets_should_exit_and_is_recorded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="localcsi.lifecycle")
    forced: list[int] = []
    with Lifecycle(force_exit=forced.append) as lifecycle:
        assert not lifecycle.should_exit.is_set()
        signal.raise_signal(signal.SIGTERM)
        assert lifecycle.wait(timeout=TIMEOUT)
    assert lifecycle.received_signal is signal.SIGTERM
    assert forced == []
    [record] = caplog.records
    assert record.getMessage() == "received SIGTERM, shutting down gracefully"
    assert getattr(record, "fields", None) == {"signal": "SIGTERM"}


def test_second_signal_forces_exit_with_128_plus_signal_number() -> None:
    forced: queue.Queue[int] = queue.Queue()
    with Lifecycle(force_exit=forced.put) as lifecycle:
        signal.raise_signal(signal.SIGINT)
        assert lifecycle.wait(timeout=TIMEOUT)
        assert forced.empty()
        signal.raise_signal(signal.SIGTERM)
        assert forced.get(timeout=TIMEOUT) == 128 + signal.SIGTERM
    assert lifecycle.received_signal is signal.SIGINT


def test_signal_after_request_exit_forces_exit() -> None:
    forced: queue.Queue[int] = queue.Queue()
    with Lifecycle(force_exit=forced.put) as lifecycle:
        lifecycle.request_exit("grpc server stopped")
        assert lifecycle.should_exit.is_set()
        signal.raise_signal(signal.SIGINT)
        assert forced.get(timeout=TIMEOUT) == 128 + signal.SIGINT
    assert lifecycle.received_signal is None


def test_wait_times_out_without_a_signal() -> None:
    with Lifecycle() as lifecycle:
        assert lifecycle.wait(timeout=0.01) is False


def test_previous_handlers_are_restored_even_after_an_error() -> None:
    def previous_handler(signum: int, frame: FrameType | None) -> None:
        raise AssertionError("must not be called")

    original_term = signal.signal(signal.SIGTERM, previous_handler)
    original_int = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(KeyError), Lifecycle():
            assert signal.getsignal(signal.SIGTERM) is not previous_handler
            assert signal.getsignal(signal.SIGINT) is not original_int
            raise KeyError("boom")
        assert signal.getsignal(signal.SIGTERM) is previous_handler
        assert signal.getsignal(signal.SIGINT) is original_int
    finally:
        signal.signal(signal.SIGTERM, original_term)


def test_only_the_given_signals_are_handled() -> None:
    original_term = signal.getsignal(signal.SIGTERM)
    with Lifecycle(signals=[signal.SIGUSR1]) as lifecycle:
        assert signal.getsignal(signal.SIGTERM) is original_term
        signal.raise_signal(signal.SIGUSR1)
        assert lifecycle.wait(timeout=TIMEOUT)
    assert lifecycle.received_signal is signal.SIGUSR1


def test_entering_outside_the_main_thread_is_refused() -> None:
    errors: list[BaseException] = []

    def enter() -> None:
        try:
            with Lifecycle():
                pass
        except RuntimeError as error:
            errors.append(error)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert "main thread" in str(errors[0])


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    script = tmp_path / "server.py"
    script.write_text(SERVER_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(SRC_DIR)}
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        processes.append(process)
        # A child that never prints would block readline() forever; killing it ends the read.
        watchdog = threading.Timer(TIMEOUT, process.kill)
        watchdog.daemon = True
        watchdog.start()
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


def read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline()


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda sig: sig.name)
def test_process_exits_cleanly_on_signal(spawn: Spawn, sig: signal.Signals) -> None:
    process = spawn()
    assert read_line(process) == "ready\n"

    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=TIMEOUT)

    assert process.returncode == 0, stderr
    assert stdout == "draining\n"
    first, last = json_lines(stderr)
    assert first["logger"] == "localcsi.lifecycle"
    assert first["level"] == "info"
    assert first["msg"] == f"received {sig.name}, shutting down gracefully"
    assert first["signal"] == sig.name
    assert last["msg"] == "clean exit"


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=lambda sig: sig.name)
def test_process_stuck_in_shutdown_is_forced_out_by_second_signal(spawn: Spawn, second: signal.Signals) -> None:
    process = spawn("--hang")
    assert read_line(process) == "ready\n"
    process.send_signal(signal.SIGTERM)
    assert read_line(process) == "draining\n"

    process.send_signal(second)
    _, stderr = process.communicate(timeout=TIMEOUT)

    assert process.returncode == 128 + second, stderr
    entries = json_lines(stderr)
    assert [entry["msg"] for entry in entries] == [
        "received SIGTERM, shutting down gracefully",
        f"received {second.name} during shutdown, forcing exit",
    ]
    assert entries[-1]["level"] == "warning"
