"""Where a pod's cgroup is, from the target path the kubelet gives. Pure: names and paths only.

The pod UID is matched by the kubelet's path layout around it, never by its position, so a
non-default ``--root-dir`` works:

    <root-dir>/pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount          filesystem volumes
    <root-dir>/plugins/kubernetes.io/csi/volumeDevices/publish/<pv>/<uid>  block volumes

The kubelet names a pod's cgroup ``pod<uid>`` (cgroupfs driver) or ``kubepods-<qos>-pod<uid with _>.slice``
(systemd driver), under ``kubepods`` for Guaranteed pods and ``kubepods/<qos>`` for the others.
"""

from __future__ import annotations

import re

_UID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_NAME = r"(?!\.\.?/)[^/]+"  # a path component other than . and ..
_FILESYSTEM_TARGET = re.compile(rf"/pods/(?P<uid>{_UID})/volumes/kubernetes\.io~csi/{_NAME}/mount/?")
_BLOCK_TARGET = re.compile(rf"/volumeDevices/publish/{_NAME}/(?P<uid>{_UID})")
_UID_ONLY = re.compile(_UID)
QOS_CLASSES = ("", "burstable", "besteffort")  # "": Guaranteed pods sit right under kubepods


def pod_uid(target_path: str) -> str | None:
    """The UID of the pod a kubelet target path belongs to; None for a path the kubelet did not lay out."""
    if not target_path.startswith("/") or "/../" in target_path or "/./" in target_path:
        return None
    for pattern in (_FILESYSTEM_TARGET, _BLOCK_TARGET):
        match = pattern.search(target_path)
        if match is not None and match.end() == len(target_path):
            return match["uid"]
    return None


def is_block_target(target_path: str) -> bool:
    """A block volume's target: a device node bind-mounted on a file, whose mount shows devtmpfs's device."""
    match = _BLOCK_TARGET.search(target_path)
    return match is not None and match.end() == len(target_path) and pod_uid(target_path) is not None


def is_pod_uid(text: str) -> bool:
    return _UID_ONLY.fullmatch(text) is not None


def cgroupfs_name(uid: str) -> str:
    return f"pod{uid}"


def systemd_name(uid: str, qos: str) -> str:
    escaped = uid.replace("-", "_")
    return f"kubepods-{qos}-pod{escaped}.slice" if qos else f"kubepods-pod{escaped}.slice"


def candidate_dirs(uid: str) -> tuple[str, ...]:
    """Paths, relative to a hierarchy's root, where the kubelet's default layouts put the pod's cgroup."""
    paths: list[str] = []
    for qos in QOS_CLASSES:
        paths.append("/".join(part for part in ("kubepods", qos, cgroupfs_name(uid)) if part))
        parent = f"kubepods.slice/kubepods-{qos}.slice" if qos else "kubepods.slice"
        paths.append(f"{parent}/{systemd_name(uid, qos)}")
    return tuple(paths)


def is_pod_dir_name(name: str, uid: str) -> bool:
    """Whether a cgroup directory name is this pod's, in either driver's naming (for a custom cgroup root)."""
    return name == cgroupfs_name(uid) or any(name == systemd_name(uid, qos) for qos in QOS_CLASSES)
