from __future__ import annotations

import os
from pathlib import Path

from localcsi.testing.containerd_store import STALE_AFTER, _config, prune_stale_stores, store_key


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


def test_only_stores_nobody_used_lately_are_pruned(tmp_path: Path) -> None:
    now = 1_000_000.0
    recent, old = tmp_path / "containerd-store-aaaa.img", tmp_path / "containerd-store-bbbb.img"
    other = tmp_path / "localcsi-cccc.tar"
    for path, age in ((recent, STALE_AFTER - 60), (old, STALE_AFTER + 60), (other, STALE_AFTER + 60)):
        path.write_bytes(b"x")
        os.utime(path, (now - age, now - age))
    assert prune_stale_stores(now, tmp_path) == [old]
    assert recent.exists() and other.exists() and not old.exists()
