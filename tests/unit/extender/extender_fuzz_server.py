"""The extender's HTTP server over a small cluster, in its own process, for the fuzz test
(test_extender_server_fuzz.py): its memory is then the server's alone.

Run as a script: prints the port, then answers ``stats`` lines on stdin with a JSON line (VmRSS and
VmHWM in KiB, Python's allocated blocks after a full collection, pods holding reservations) and stops
at the end of stdin. Errors are logged to stderr, which the test reads for tracebacks.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
from typing import Any

from extender_objects import NAMESPACE, inline, nls, pod, pv_for, pvc, storage_class

from localcsi.extender.cache import (
    NODE_LOCAL_STORAGES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
    STORAGE_CLASSES,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
)
from localcsi.extender.main import settle_garbage_collector
from localcsi.extender.server import ExtenderServer
from localcsi.extender.service import Extender
from localcsi.memory import pin_mmap_threshold

KNOWN_NODES = ("big", "small", "two", "disks")
CLASSES = ("local", "thin", "striped", "device", "bad", "other", "missing")
CLAIMS = (
    "data",
    "tiny",
    "thin",
    "striped",
    "device",
    "bound",
    "selected",
    "restore",
    "restore-pending",
    "clone",
    "bad-class",
    "other-class",
    "missing-class",
    "no-class",
)


def build_extender() -> Extender:
    """Four nodes (VGs of 100, 5 and 50 + 50 GiB, one with a disk), StorageClasses of every kind
    (one invalid, one not ours), and PVCs pending, bound, committed, restoring and cloning."""
    extender = Extender()
    extender.view.snapshots_watched = True
    classes = [
        storage_class("local"),
        storage_class("thin", lvmType="thin"),
        storage_class("striped", lvmType="striping", stripes="2"),
        storage_class("device", volumeType="Device", mediaType="ssd"),
        storage_class("bad", lvmType="bogus"),
        storage_class("other", provisioner="example.com/other"),
    ]
    for obj in classes:
        extender.apply(STORAGE_CLASSES, "ADDED", obj)
    disk = {"name": "/dev/sdb", "total": 100 << 30, "mediaType": "ssd", "condition": "DiskReady"}
    for obj in (
        nls("big", ("vg0", 100)),
        nls("small", ("vg0", 5)),
        nls("two", ("vg0", 50), ("vg1", 50)),
        nls("disks", ("vg0", 10), devices=(disk,)),
    ):
        extender.apply(NODE_LOCAL_STORAGES, "ADDED", obj)
    bound = pvc("bound", "2Gi", volume_name="pvc-uid-bound")
    snapshot_source = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot"}
    claims = [
        pvc("data", "10Gi"),
        pvc("tiny", "1Gi"),
        pvc("thin", "20Gi", "thin"),
        pvc("striped", "8Gi", "striped"),
        pvc("device", "50Gi", "device"),
        bound,
        pvc("selected", "3Gi", selected_node="small"),
        pvc("restore", "1Gi", data_source={**snapshot_source, "name": "snap-ready"}),
        pvc("restore-pending", "1Gi", data_source={**snapshot_source, "name": "snap-pending"}),
        pvc("clone", "2Gi", data_source={"kind": "PersistentVolumeClaim", "name": "bound"}),
        pvc("bad-class", "1Gi", "bad"),
        pvc("other-class", "1Gi", "other"),
        pvc("missing-class", "1Gi", "missing"),
        pvc("no-class", "1Gi", None),
    ]
    for obj in claims:
        extender.apply(PERSISTENT_VOLUME_CLAIMS, "ADDED", obj)
    extender.apply(PERSISTENT_VOLUMES, "ADDED", pv_for(bound, "big"))
    for name, content in (("snap-ready", "content-ready"), ("snap-pending", "content-pending")):
        snapshot = {"metadata": {"name": name, "namespace": NAMESPACE}, "status": {}}
        snapshot["status"]["boundVolumeSnapshotContentName"] = content
        extender.apply(VOLUME_SNAPSHOTS, "ADDED", snapshot)
    ready_content = {"metadata": {"name": "content-ready"}, "status": {"snapshotHandle": "two/vg0/snap-0123"}}
    extender.apply(VOLUME_SNAPSHOT_CONTENTS, "ADDED", ready_content)
    running = pod("running", "data", node="big", volumes=(inline("scratch", size="2Gi"),))
    extender.apply(PODS, "ADDED", running)
    return extender


def stats(extender: Extender) -> dict[str, Any]:
    gc.collect()
    status = {}
    with open("/proc/self/status") as lines:
        for line in lines:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                status[key] = int(value.split()[0])
    return {
        "rss_kib": status["VmRSS"],
        "hwm_kib": status["VmHWM"],
        "blocks": sys.getallocatedblocks(),
        "reserved_pods": extender.ready_summary()["reserved_pods"],
    }


def main() -> None:
    logging.basicConfig(level=logging.ERROR)  # a 500's traceback, not a warning per 400
    assert pin_mmap_threshold(), "as `localcsi extender` does at start"
    extender = build_extender()
    server = ExtenderServer(("127.0.0.1", 0), extender)
    settle_garbage_collector()  # as `localcsi extender` does once its informers have synced
    server.start()
    print(server.port, flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            print(json.dumps(stats(extender)), flush=True)
    server.stop()


if __name__ == "__main__":
    main()
