"""The node VM is a real machine with device-mapper: LVM state survives a reboot."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import localcsi
from localcsi.testing.install import GUEST_SITE
from localcsi.testing.phases import Phases
from localcsi.testing.vm import HOST_ALIAS, NodeVM, free_port
from localcsi.testing.vm_config import VMConfig

VG = "vgtest"
LV = "data"
MNT = "/mnt/data"
BOOT_ID = "/proc/sys/kernel/random/boot_id"


@pytest.fixture(scope="module")
def host_echo_port() -> Iterator[int]:
    """A line echo server on the host's loopback, for the guest to reach."""
    server = socket.create_server(("127.0.0.1", free_port()))
    port: int = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                line = conn.makefile("rb").readline()
                conn.sendall(b"echo: " + line)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    server.close()


@pytest.fixture(scope="module")
def vm_config(host_echo_port: int) -> VMConfig:
    return VMConfig(disks_gib=[2], port_forwards={8123: 0}, guest_forwards=[host_echo_port])


def lvs(vm: NodeVM) -> list[dict[str, str]]:
    out = vm.check(
        [
            "lvs",
            "--reportformat",
            "json",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            "lv_name,vg_name,lv_size,lv_attr",
            VG,
        ]
    )
    rows: list[dict[str, str]] = out.json()["report"][0]["lv"]
    return rows


def sha256(vm: NodeVM, path: str) -> str:
    return vm.check(["sha256sum", path]).stdout.split()[0]


def test_lvm_volume_survives_reboot(node_vm: NodeVM) -> None:
    disk = node_vm.data_disks()[0]
    node_vm.check(["pvcreate", "-y", disk])
    node_vm.check(["vgcreate", VG, disk])
    node_vm.check(["lvcreate", "-y", "-n", LV, "-L", "256m", VG])
    [row] = lvs(node_vm)
    assert (row["lv_name"], row["vg_name"], int(row["lv_size"])) == (LV, VG, 256 * 1024**2)
    assert row["lv_attr"][4] == "a", f"LV not active: {row['lv_attr']}"

    node_vm.check(["mkfs.ext4", "-q", f"/dev/{VG}/{LV}"])
    node_vm.check(["mkdir", "-p", MNT])
    node_vm.check(["mount", f"/dev/{VG}/{LV}", MNT])
    node_vm.check(["dd", "if=/dev/urandom", f"of={MNT}/blob", "bs=1M", "count=8", "status=none"])
    before = sha256(node_vm, f"{MNT}/blob")
    node_vm.check(["umount", MNT])
    boot_id = node_vm.check(["cat", BOOT_ID]).stdout

    node_vm.reboot()

    assert node_vm.boots == 2
    assert node_vm.check(["cat", BOOT_ID]).stdout != boot_id, "the guest kernel did not restart"
    assert node_vm.run(["findmnt", MNT]).rc == 1, "mount survived: not a real reboot"
    node_vm.check(["vgchange", "-ay", VG])
    [row] = lvs(node_vm)
    assert row["lv_attr"][4] == "a"
    node_vm.check(["mkdir", "-p", MNT])
    node_vm.check(["mount", f"/dev/{VG}/{LV}", MNT])
    assert sha256(node_vm, f"{MNT}/blob") == before


def test_guest_port_is_forwarded_to_host_loopback(node_vm: NodeVM) -> None:
    guest_port = 8123
    assert guest_port in node_vm.forwarded
    pid = node_vm.guest.spawn(
        ["python3", "-m", "http.server", str(guest_port), "--directory", "/etc"], log="/tmp/http.log"
    )
    try:
        node_vm.check(["python3", "-c", _WAIT_FOR_PORT.format(host="127.0.0.1", port=guest_port)], timeout=60)
        with socket.create_connection(("127.0.0.1", node_vm.host_port(guest_port)), timeout=30) as conn:
            conn.sendall(b"GET /hostname HTTP/1.0\r\n\r\n")
            reply = conn.makefile("rb").read()
        assert reply.startswith(b"HTTP/1.0 200")
        assert reply.rstrip().endswith(b"localcsi-node")
    finally:
        node_vm.guest.signal(pid, 15)


def test_guest_reaches_host_loopback_port(node_vm: NodeVM, host_echo_port: int) -> None:
    script = (
        "import socket\n"
        f"with socket.create_connection(('{HOST_ALIAS}', {host_echo_port}), timeout=30) as c:\n"
        "    c.sendall(b'ping from guest\\n'); print(c.makefile().readline().strip())\n"
    )
    out = node_vm.check(["python3", "-c", script], timeout=60).stdout.strip()
    assert out == "echo: ping from guest"


def test_project_installs_and_runs_in_guest(installed_vm: NodeVM) -> None:
    out = installed_vm.check(["localcsi", "--version"]).stdout
    assert localcsi.__version__ in out
    imports = "import grpc, google.protobuf, urllib3, yaml, prometheus_client; print(grpc.__version__)"
    out = installed_vm.check(["python3", "-c", imports], env={"PYTHONPATH": GUEST_SITE}).stdout
    assert out.strip() == grpc.__version__


def test_stop_leaves_no_qemu_and_no_files(vm_phases: Phases) -> None:
    vm = NodeVM(VMConfig(disks_gib=[1]), vm_phases).start()
    workdir, pid = vm.workdir, vm.qemu_pid
    assert pid is not None and Path(f"/proc/{pid}").exists()
    vm.stop()
    assert not vm.running
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert not workdir.exists()


_WAIT_FOR_PORT = """
import socket, time
for _ in range(200):
    try:
        socket.create_connection(("{host}", {port}), timeout=1).close(); break
    except OSError:
        time.sleep(0.1)
else:
    raise SystemExit("port {port} never opened")
"""
