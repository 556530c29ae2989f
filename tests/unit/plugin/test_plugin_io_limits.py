"""The IO limits resync loop: it runs resync over and over, outlives a failed pass, and stops at once."""

import logging
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from localcsi.core.iolimits import Throttle
from localcsi.driver.pod_limits import InForce, PodIoLimits
from localcsi.fs.types import DeviceNumber
from localcsi.metrics.text import exposition
from localcsi.plugin.io_limits import IoLimitResync, register_io_limit_metrics

pytestmark = pytest.mark.unit

WAIT = 10.0  # a bound for a hung loop, not a timing assertion


class CountingLimits(PodIoLimits):
    """A PodIoLimits whose resync counts its passes, fails the ones asked to, and signals when enough ran."""

    def __init__(self, *, failing: frozenset[int] = frozenset(), enough: int = 3) -> None:
        self.passes = 0
        self.failing = failing
        self.enough = enough
        self.reached = threading.Event()

    def resync(self) -> int:
        self.passes += 1
        if self.passes >= self.enough:
            self.reached.set()
        if self.passes in self.failing:
            raise RuntimeError(f"pass {self.passes} broke")
        return 0


def run_until_reached(limits: CountingLimits) -> IoLimitResync:
    """Run the loop fast until ``limits`` saw enough passes, then stop it."""
    resync = IoLimitResync(limits, interval=0.001)
    resync.start()
    try:
        assert limits.reached.wait(WAIT)
    finally:
        resync.stop()
    return resync


def test_the_loop_resyncs_repeatedly() -> None:
    limits = CountingLimits(enough=3)
    resync = run_until_reached(limits)
    assert limits.passes >= 3
    assert not resync._thread.is_alive()


def test_a_failed_pass_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    limits = CountingLimits(failing=frozenset({1}), enough=3)
    with caplog.at_level(logging.ERROR, logger="localcsi.plugin.io_limits"):
        resync = run_until_reached(limits)
    assert limits.passes >= 3
    failures = [record for record in caplog.records if record.getMessage() == "io-limits-resync failed"]
    assert len(failures) == 1
    assert failures[0].exc_info is not None and "pass 1 broke" in str(failures[0].exc_info[1])
    assert not resync._thread.is_alive()


def test_stop_ends_the_thread_in_the_middle_of_a_long_interval() -> None:
    limits = CountingLimits()
    resync = IoLimitResync(limits, interval=3600)
    resync.start()
    assert resync._thread.is_alive()
    resync.stop(timeout=WAIT)
    assert not resync._thread.is_alive()
    assert limits.passes == 0  # the first pass comes after one interval


def test_stop_before_start_is_harmless_and_the_loop_then_never_runs() -> None:
    limits = CountingLimits(enough=1)
    resync = IoLimitResync(limits, interval=0.001)
    resync.stop()
    resync.start()
    resync._thread.join(WAIT)
    assert not resync._thread.is_alive()
    assert limits.passes == 0


def test_metrics_report_the_last_resyncs_volumes_and_limits() -> None:
    limits = CountingLimits()
    limits.in_force = InForce(3, (("localcsi-a", "csi-x", Throttle(write_bps=1048576, read_iops=40)),))
    registry = CollectorRegistry()
    register_io_limit_metrics(limits, registry)
    text = generate_latest(registry).decode()
    assert "localcsi_published_volumes 3.0" in text
    assert 'localcsi_volume_io_limit{direction="write",lv="csi-x",unit="bytes",vg="localcsi-a"} 1.048576e+06' in text
    assert 'localcsi_volume_io_limit{direction="read",lv="csi-x",unit="ops",vg="localcsi-a"} 40.0' in text
    assert 'direction="read",lv="csi-x",unit="bytes"' not in text, "no series for a direction without a limit"
    limits.in_force = InForce()
    assert "localcsi_volume_io_limit{" not in generate_latest(registry).decode(), "a scrape reads the latest pass"


def test_metrics_count_each_published_volumes_io_from_its_device_at_scrape(tmp_path: Path) -> None:
    stat = tmp_path / "diskstats"
    stat.write_text(" 253       3 dm-3 120    0  2048   30  400    0 16384  900    0 1000  930\n")
    limits = CountingLimits()
    devices = (("localcsi-a", "csi-x", DeviceNumber(253, 3)), ("localcsi-a", "csi-gone", DeviceNumber(253, 9)))
    limits.in_force = InForce(2, (), devices)
    registry = CollectorRegistry()
    register_io_limit_metrics(limits, registry, diskstats=tmp_path / "diskstats")
    text = generate_latest(registry).decode()
    assert 'localcsi_volume_reads_total{lv="csi-x",vg="localcsi-a"} 120.0' in text
    assert 'localcsi_volume_read_bytes_total{lv="csi-x",vg="localcsi-a"} 1.048576e+06' in text  # 2048 sectors
    assert 'localcsi_volume_writes_total{lv="csi-x",vg="localcsi-a"} 400.0' in text
    assert 'localcsi_volume_written_bytes_total{lv="csi-x",vg="localcsi-a"} 8.388608e+06' in text
    assert "csi-gone" not in text, "a device that is gone has no series"
    stat.write_text(" 253       3 dm-3 121    0  2056   30  400    0 16384  900    0 1000  930\n")
    assert 'localcsi_volume_reads_total{lv="csi-x",vg="localcsi-a"} 121.0' in generate_latest(registry).decode()


def test_metrics_written_by_hand_are_the_registrys_text(tmp_path: Path) -> None:
    lines = [f" 253 {minor} dm-{minor} {minor} 0 2048 30 400 0 16384 900 0 1000 930\n" for minor in (3, 4)]
    (tmp_path / "diskstats").write_text("".join(lines))
    limits = CountingLimits()
    devices = (("localcsi-a", "csi-x", DeviceNumber(253, 3)), ("localcsi-b", "csi-y", DeviceNumber(253, 4)))
    throttles = (("localcsi-a", "csi-x", Throttle(write_bps=1048576, read_iops=40)),)
    limits.in_force = InForce(2, throttles, devices)
    registry = CollectorRegistry()
    register_io_limit_metrics(limits, registry, diskstats=tmp_path / "diskstats")
    served = exposition(registry).decode()
    assert served == generate_latest(registry).decode()
    assert 'localcsi_volume_reads_total{lv="csi-y",vg="localcsi-b"} 4.0' in served.splitlines()
