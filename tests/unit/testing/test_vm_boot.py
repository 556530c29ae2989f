from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from localcsi.testing import vm as vm_module
from localcsi.testing.accel import KVM, TCG
from localcsi.testing.guest_client import GuestError
from localcsi.testing.image import NodeImage
from localcsi.testing.phases import Phases
from localcsi.testing.vm import BootStalled, NodeVM
from localcsi.testing.vm_config import VMConfig

STALL = "[ 65.6] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n"


class FakeBoots:
    """Each launch starts a stand-in for qemu and writes the console that boot prints; the guest agent
    answers only on the launches listed in `answers`, and not before `silent_pings` pings have gone
    unanswered."""

    def __init__(self, vm: NodeVM, consoles: list[str], answers: set[int], silent_pings: int = 0) -> None:
        self.vm, self.consoles, self.answers = vm, consoles, answers
        self.launches = 0
        self.silent_pings = silent_pings

    def launch(self, accel: Any) -> None:
        (self.vm.workdir / "console.log").write_text(self.consoles[self.launches])
        self.launches += 1
        self.vm._proc = subprocess.Popen(["sleep", "30"])

    def ping(self, timeout: float) -> bool:
        self.silent_pings -= 1
        return self.launches in self.answers and self.silent_pings < 0


def _vm(
    monkeypatch: pytest.MonkeyPatch, consoles: list[str], answers: set[int], lines: list[str], silent_pings: int = 0
) -> FakeBoots:
    monkeypatch.setattr(vm_module, "STALL_GRACE", 0.2)
    vm = NodeVM(VMConfig(disks_gib=[1], boot_timeout=3.0), Phases(lines.append))
    vm._image, vm._accel = object(), TCG  # type: ignore[assignment]
    fake = FakeBoots(vm, consoles, answers, silent_pings)
    monkeypatch.setattr(vm, "_launch", fake.launch)
    monkeypatch.setattr(vm.guest, "ping", fake.ping)
    return fake


def _kill(vm: NodeVM) -> None:
    vm._kill()
    vm.stop()


def test_a_boot_that_stalls_is_tried_once_more_with_a_fresh_qemu(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    fake = _vm(monkeypatch, [STALL, "booted\n"], {2}, lines)
    try:
        fake.vm.start()
        assert fake.launches == 2 and fake.vm.boots == 1
        assert any("stalled during boot; starting qemu again" in line for line in lines), lines
    finally:
        _kill(fake.vm)


def test_a_second_stall_fails_the_boot(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    fake = _vm(monkeypatch, [STALL, STALL], set(), lines)
    try:
        with pytest.raises(BootStalled, match="RCU stalls on the console"):
            fake.vm.start()
        assert fake.launches == 2 and fake.vm.boots == 0
        assert not fake.vm.running, "the stalled qemu is killed"
    finally:
        _kill(fake.vm)


def test_a_boot_without_a_stall_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    fake = _vm(monkeypatch, ["slow\n", "booted\n"], set(), lines)
    try:
        with pytest.raises(GuestError, match="not up after 3s") as raised:
            fake.vm.start()
        assert not isinstance(raised.value, BootStalled)
        assert fake.launches == 1
    finally:
        _kill(fake.vm)


def test_a_stall_that_the_guest_recovers_from_within_the_grace_boots(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    fake = _vm(monkeypatch, [STALL], {1}, lines, silent_pings=2)
    monkeypatch.setattr(vm_module, "STALL_GRACE", 2.0)
    try:
        fake.vm.start()
        assert fake.launches == 1 and fake.silent_pings < 0, "the agent answered after the stall was seen"
    finally:
        _kill(fake.vm)


def test_only_an_emulated_guest_is_told_to_trust_its_tsc() -> None:
    vm = NodeVM(VMConfig(disks_gib=[1], cgroup_version="v1"))
    vm._image = NodeImage(root=Path("/root.img"), kernel=Path("/vmlinuz"), initrd=Path("/initrd"))
    try:
        appended = {accel.name: _kernel_args(vm._argv(accel)) for accel in (TCG, KVM)}
        assert {"tsc=reliable", "clocksource=tsc", "localcsi.cgroup=v1"} <= appended["tcg"]
        assert "tsc=reliable" not in appended["kvm"] and "localcsi.cgroup=v1" in appended["kvm"]
    finally:
        vm.stop()


def _kernel_args(argv: list[str]) -> set[str]:
    return set(argv[argv.index("-append") + 1].split())
