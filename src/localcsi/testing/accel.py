"""KVM where it works, TCG otherwise.

/dev/kvm can exist and still fail to boot a normal kernel (it does on some sandboxes), so
"auto" boots once with KVM and remembers the answer per host kernel and qemu build.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from localcsi.testing.build_lock import build_lock
from localcsi.testing.image import cache_root
from localcsi.testing.phases import Phases

KVM_PROBE_SECONDS = 45.0


@dataclass(frozen=True)
class Accelerator:
    name: str
    qemu_args: tuple[str, ...]
    kernel_args: tuple[str, ...] = ()


KVM = Accelerator("kvm", ("-accel", "kvm", "-cpu", "host"))
# x86-64-v2 without AVX, and AMD's vendor string. Under TCG (qemu 7.2) glibc's AVX2 string and memory
# routines, which it picks on `-cpu max`, are emulated about 2x slower than its SSE4 ones: reading 64 MiB
# took 1.56 s on max and 0.82 s here, sha256sum of it 4.4 s and 1.4 s (docs/testing.md). An AMD vendor
# keeps the guest kernel from turning on page-table isolation, which flushes TCG's TLB at every syscall.
TCG_CPU = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16"
# tsc=reliable: under TCG the guest kernel finds the vCPUs' TSCs unsynchronized and falls back to the HPET,
# an emulated device read on every clock_gettime (100,000 time.monotonic() took 0.51 s, 0.13 s on the TSC).
# TCG's TSC is the host's, one invariant clock for every vCPU. The idle e2e node took 0.68 host cores on
# the TSC, 0.74 on the HPET (docs/testing.md).
TCG_KERNEL_ARGS = ("tsc=reliable", "clocksource=tsc")
TCG = Accelerator(
    "tcg", ("-accel", "tcg,thread=multi", "-cpu", os.environ.get("LOCALCSI_TCG_CPU", TCG_CPU)), TCG_KERNEL_ARGS
)
BY_NAME = {"kvm": KVM, "tcg": TCG}


def _kvm_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def _probe_key() -> str:
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True, check=False)
    version = qemu.stdout.splitlines()[0] if qemu.stdout else "unknown"
    return f"{platform.release()} {version}"


def choose_accelerator(probe: Callable[[Accelerator, float], bool], phases: Phases) -> Accelerator:
    wanted = os.environ.get("LOCALCSI_VM_ACCEL", "auto")
    if wanted in BY_NAME:
        return BY_NAME[wanted]
    if wanted != "auto":
        raise ValueError(f"LOCALCSI_VM_ACCEL={wanted!r}: use auto, kvm or tcg")
    if not _kvm_usable():
        return TCG
    record = cache_root() / "vm" / "kvm-probe.txt"
    key = _probe_key()
    with build_lock(record.with_suffix(".lock")):  # one probe however many test workers start at once
        if record.exists():
            remembered_key, _, verdict = record.read_text().rpartition("\n")
            if remembered_key == key:
                return KVM if verdict == "kvm" else TCG
        with phases.phase("probe KVM boot"):
            works = probe(KVM, KVM_PROBE_SECONDS)
        verdict = "kvm" if works else "tcg"
        phases.note(f"KVM {'boots' if works else 'does not boot'} the node image here; using {verdict}")
        record.write_text(f"{key}\n{verdict}")
    return KVM if works else TCG
