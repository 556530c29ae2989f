import argparse
import gc
import os
import signal
import socket
import threading
import time
import urllib.request
from typing import Any

import pytest

from localcsi.extender import main
from localcsi.extender.informers import Watched
from localcsi.extender.service import Extender
from localcsi.testing.vm import free_port

pytestmark = pytest.mark.unit


def test_split_listen() -> None:
    assert main.split_listen("127.0.0.1:8099") == ("127.0.0.1", 8099)
    assert main.split_listen(":8099") == ("0.0.0.0", 8099)  # noqa: S104 - what an empty host means
    assert main.split_listen("[::1]:8099") == ("::1", 8099)


def test_serves_until_sigterm_then_exits_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Extender] = []

    def no_informers(api: Any, extender: Extender, should_exit: Any) -> list[Watched]:
        built.append(extender)
        return []

    monkeypatch.setattr(main, "api_client", lambda kubeconfig: object())
    monkeypatch.setattr(main, "start_informers", no_informers)
    monkeypatch.setattr(main, "settle_garbage_collector", lambda: None)  # leave this process's GC be
    port = free_port()
    answers: list[bytes] = []

    def probe_then_terminate() -> None:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    answers.append(response.read())
                break
            except OSError:
                threading.Event().wait(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    prober = threading.Thread(target=probe_then_terminate)
    prober.start()
    args = argparse.Namespace(listen=f"127.0.0.1:{port}", kubeconfig=None, strategy="spread", reservation_ttl=60)
    assert main.run(args) == 0
    prober.join()
    assert answers == [b"ok\n"]
    assert built[0].strategy.value == "spread"
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_settling_the_collector_freezes_what_exists_and_collects_the_young_less_often() -> None:
    before = gc.get_threshold()
    try:
        main.settle_garbage_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (main.GC_YOUNG_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def run_until(monkeypatch: pytest.MonkeyPatch, resync_seconds: float, resyncs_before_sigterm: int) -> dict[str, Any]:
    """main.run with no informers (synced at once) until some resyncs have run, then SIGTERM: what happened."""
    seen: dict[str, Any] = {"settled": 0, "resyncs": 0}
    enough = threading.Event()

    def settle() -> None:
        seen["settled"] += 1
        if resyncs_before_sigterm == 0:
            enough.set()

    def resync(extender: Extender, watched: list[Watched]) -> int:
        seen["resyncs"] += 1
        if seen["resyncs"] >= resyncs_before_sigterm:
            enough.set()
        return 0

    monkeypatch.setattr(main, "api_client", lambda kubeconfig: object())
    monkeypatch.setattr(main, "start_informers", lambda api, extender, should_exit: [])
    monkeypatch.setattr(main, "settle_garbage_collector", settle)
    monkeypatch.setattr(main, "resync", resync)
    monkeypatch.setattr(main, "SYNC_POLL_SECONDS", 0.01)
    monkeypatch.setattr(main, "RESYNC_SECONDS", resync_seconds)

    def terminate() -> None:
        enough.wait(10)
        time.sleep(0.2)  # in the wait for the next resync
        seen["asked"] = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate)
    killer.start()
    args = argparse.Namespace(
        listen=f"127.0.0.1:{free_port()}", kubeconfig=None, strategy="binpack", reservation_ttl=60
    )
    seen["code"] = main.run(args)
    seen["stop_seconds"] = time.monotonic() - seen["asked"]
    killer.join()
    return seen


def test_the_collector_is_settled_once_however_many_resyncs_follow(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = run_until(monkeypatch, resync_seconds=0.01, resyncs_before_sigterm=5)
    assert seen["code"] == 0
    assert seen["resyncs"] >= 5
    assert seen["settled"] == 1


def test_shutdown_ends_the_wait_for_the_next_resync_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = run_until(monkeypatch, resync_seconds=3600, resyncs_before_sigterm=0)
    assert seen["code"] == 0
    assert seen["resyncs"] == 0
    assert seen["stop_seconds"] < 2  # the server's own stop included; the resync was an hour away


def test_a_client_that_cannot_be_built_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(kubeconfig: str | None) -> Any:
        raise FileNotFoundError(kubeconfig)

    monkeypatch.setattr(main, "api_client", broken)
    args = argparse.Namespace(listen="127.0.0.1:1", kubeconfig="/nonexistent", strategy="binpack", reservation_ttl=60)
    assert main.run(args) == 1


def test_an_address_in_use_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(main, "api_client", lambda kubeconfig: object())
    monkeypatch.setattr(main, "start_informers", lambda api, extender, should_exit: [])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = argparse.Namespace(listen=f"127.0.0.1:{port}", kubeconfig=None, strategy="binpack", reservation_ttl=60)
        assert main.run(args) == 1
