from pathlib import Path

import pytest

from localcsi.testing import accel
from localcsi.testing.accel import KVM, TCG, Accelerator, choose_accelerator
from localcsi.testing.phases import Phases

pytestmark = pytest.mark.unit


class Probe:
    def __init__(self, boots: bool) -> None:
        self.boots = boots
        self.calls = 0

    def __call__(self, accelerator: Accelerator, timeout: float) -> bool:
        assert accelerator is KVM
        self.calls += 1
        return self.boots


@pytest.fixture
def kvm_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LOCALCSI_CACHE", str(tmp_path))
    monkeypatch.delenv("LOCALCSI_VM_ACCEL", raising=False)
    monkeypatch.setattr(accel, "_kvm_usable", lambda: True)
    monkeypatch.setattr(accel, "_probe_key", lambda: "6.1.0 QEMU emulator version 7.2.0")
    return tmp_path / "vm" / "kvm-probe.txt"


def test_the_probe_runs_once_and_its_verdict_is_remembered(kvm_host: Path) -> None:
    probe = Probe(boots=False)
    assert choose_accelerator(probe, Phases()) is TCG
    assert choose_accelerator(probe, Phases()) is TCG
    assert probe.calls == 1
    assert kvm_host.read_text() == "6.1.0 QEMU emulator version 7.2.0\ntcg"


def test_a_new_kernel_or_qemu_probes_again(kvm_host: Path) -> None:
    kvm_host.parent.mkdir(parents=True)
    kvm_host.write_text("5.10.0 QEMU emulator version 5.2.0\ntcg")
    probe = Probe(boots=True)
    assert choose_accelerator(probe, Phases()) is KVM
    assert probe.calls == 1
    assert kvm_host.read_text().endswith("\nkvm")


def test_the_environment_chooses_without_a_probe(kvm_host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = Probe(boots=True)
    monkeypatch.setenv("LOCALCSI_VM_ACCEL", "tcg")
    assert choose_accelerator(probe, Phases()) is TCG
    monkeypatch.setenv("LOCALCSI_VM_ACCEL", "hvf")
    with pytest.raises(ValueError, match="use auto, kvm or tcg"):
        choose_accelerator(probe, Phases())
    assert probe.calls == 0


def test_without_a_usable_dev_kvm_tcg_is_used_unprobed(kvm_host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "_kvm_usable", lambda: False)
    probe = Probe(boots=True)
    assert choose_accelerator(probe, Phases()) is TCG
    assert probe.calls == 0
