from __future__ import annotations

from pathlib import Path

from localcsi.testing.containerd_store import _config, store_key


def test_the_store_key_follows_the_archives_and_ignores_their_order() -> None:
    a = {"x:1": Path("/c/x-aaaa.tar"), "y:1": Path("/c/y-bbbb.tar")}
    b = {"y:1": Path("/c/y-bbbb.tar"), "x:1": Path("/c/x-aaaa.tar")}
    rebuilt = {"x:1": Path("/c/x-cccc.tar"), "y:1": Path("/c/y-bbbb.tar")}
    assert store_key(a) == store_key(b)
    assert store_key(a) != store_key(rebuilt), "a rebuilt archive makes a new store"


def test_the_import_daemon_is_confined_to_its_work_directory(tmp_path: Path) -> None:
    config = _config(tmp_path).read_text()
    assert f'root = "{tmp_path / "root"}"' in config
    assert f'state = "{tmp_path / "state"}"' in config
    assert f'address = "{tmp_path / "containerd.sock"}"' in config
    assert '"io.containerd.grpc.v1.cri"' in config, "no CRI plugin: nothing but the import runs"
