"""containerd's image store, filled on the host and handed to the node VM as a disk.

Importing the image archives inside the VM took 115 s under TCG (two copies of about 650 MiB, the
content store and the unpacked snapshots); the same import by the host's containerd (the same Debian
1.6 build as the guest's) takes about 20 s. So the host imports them once into a throwaway root,
`mke2fs -d` turns that root into an ext4 image cached beside the archives, and each VM mounts a
copy-on-write overlay of it at /var/lib/containerd before its containerd starts.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from localcsi.testing.build_lock import build_lock
from localcsi.testing.images import CONTAINERD_NAMESPACE, containerd_import_argv, images_dir

GUEST_ROOT = "/var/lib/containerd"
# Sparse: only what the import wrote takes space; the overlay's writes (new layers, logs) fit beside.
STORE_SIZE = "4G"
STARTUP_TIMEOUT = 30.0
# A store untouched this long belongs to no run still going (the e2e tier takes under 30 minutes).
STALE_AFTER = 3 * 3600


def store_key(archives: Mapping[str, Path]) -> str:
    """A store per set of archives: their names carry their own content keys."""
    names = "\n".join(sorted(f"{ref}={path.name}" for ref, path in archives.items()))
    return hashlib.sha256(names.encode()).hexdigest()[:16]


def store_image(archives: Mapping[str, Path]) -> Path:
    """The cached ext4 image of a containerd root holding `archives` in the k8s.io namespace."""
    image = images_dir() / f"containerd-store-{store_key(archives)}.img"
    if image.exists():
        image.touch()  # in use: see prune_stale_stores
        return image
    with build_lock(images_dir() / "containerd-store.lock"):
        if image.exists():
            return image
        prune_stale_stores(time.time())
        with tempfile.TemporaryDirectory(dir=images_dir(), prefix="store-") as tmp:
            work = Path(tmp)
            _import(archives, work)
            partial = image.with_suffix(".partial")
            argv = ["mke2fs", "-q", "-F", "-t", "ext4", "-L", "containerd", "-d", str(work / "root"), str(partial)]
            _check([*argv, STORE_SIZE], work / "mke2fs.log")
            partial.rename(image)
    return image


def prune_stale_stores(now: float, directory: Path | None = None) -> list[Path]:
    """Remove the stores of other image sets that nobody has used for STALE_AFTER seconds. A VM opens
    its store again at each reboot, so a store another run is still using (a run from another
    checkout, whose localcsi image differs) must stay: removing it made that run's reboot fail."""
    removed = []
    for stale in (directory or images_dir()).glob("containerd-store-*.img"):
        if now - stale.stat().st_mtime > STALE_AFTER:
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


def _config(work: Path) -> Path:
    # Only what an import needs: no CRI plugin (no CNI, no streaming server) and no shims are started.
    config = work / "config.toml"
    config.write_text(
        "version = 2\n"
        f'root = "{work / "root"}"\n'
        f'state = "{work / "state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{work / "containerd.sock"}"\n'
    )
    return config


def _import(archives: Mapping[str, Path], work: Path) -> None:
    address = work / "containerd.sock"
    log = work / "containerd.log"
    with log.open("ab") as out:
        daemon = subprocess.Popen(
            ["containerd", "--config", str(_config(work))], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_for_socket(address, daemon, log)
        for archive in archives.values():
            argv = containerd_import_argv(str(archive), namespace=CONTAINERD_NAMESPACE, address=str(address))
            _check(argv, work / "ctr.log")
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    shutil.rmtree(work / "state", ignore_errors=True)


def _wait_for_socket(address: Path, daemon: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not address.exists():
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"containerd did not start for the image import:\n{log.read_text(errors='replace')[-3000:]}"
            )
        time.sleep(0.1)


def _check(argv: list[str], log: Path) -> None:
    with log.open("ab") as out:
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(argv[:3])} failed with exit code {result.returncode}:\n{tail}")
