"""Kubernetes objects (raw dicts with the apiserver's JSON keys) as scheduling core inputs.

Keys: every volume is keyed by the LV name it has or will have, so the same volume seen as a pending
PVC, a LogicalVolume, a PV and an LV in the agent's report counts once:
- a PVC's volume is named ``pvc-<PVC uid>`` by the external-provisioner, its LV ``volume_lv_name`` of that;
- a PV's volumeHandle is ``<node>/<vg>/<lv>``;
- a LogicalVolume is named after its LV;
- a CSI inline volume's handle is kubelet's ``csi-<sha256(pod UID + volume name)>``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Any, TypeGuard

from localcsi import DRIVER_NAME, TOPOLOGY_KEY
from localcsi.core.errors import CoreError
from localcsi.core.exclusive import is_device_vg, is_exclusive_group, usable_bytes
from localcsi.core.ids import parse_volume_id
from localcsi.core.names import SNAPSHOT_LV_PREFIX, VOLUME_LV_PREFIX, volume_lv_name
from localcsi.core.params import LvmType, MediaType, VolumeParams, VolumeType, parse_volume_params
from localcsi.core.scheduling import DiskReport, NodeReport, Usage, VgReport, lvm_charge
from localcsi.core.sizes import parse_quantity

Object = dict[str, Any]

SELECTED_NODE_ANNOTATION = "volume.kubernetes.io/selected-node"
PVC_NAME_PREFIX = "pvc"  # the external-provisioner's default --volume-name-prefix
INLINE_SIZE_ATTRIBUTE = "size"
EXCLUSIVE_DISK_ATTRIBUTE = "device"  # the disk or mount point a Device / MountPoint PV took
_HEALTHY = ("", "DiskReady", "DiskFull")


def is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(value, Mapping)``, answered first for the dicts JSON decodes to: the ABC's own check
    costs several times as much, and a pod's demand makes about twenty of them."""
    return type(value) is dict or isinstance(value, Mapping)


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    value = obj.get("metadata")
    return value if is_mapping(value) else {}


def section(obj: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = obj.get(name)
    return value if is_mapping(value) else {}


def items(obj: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = obj.get(name)
    return [item for item in value if is_mapping(item)] if isinstance(value, list) else []


def byte_count(value: object, default: int = 0) -> int:
    """An int64 field or a quantity string; anything else is ``default``."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, str):
        parsed = _quantity_bytes(value)
        return default if parsed is None else parsed
    return default


@functools.lru_cache(maxsize=1024)  # a cluster's PVCs ask for few distinct sizes, and parsing takes Fractions
def _quantity_bytes(text: str) -> int | None:
    try:
        return parse_quantity(text)
    except CoreError:
        return None


# -- NodeLocalStorage --------------------------------------------------------------------------------


def _problem(entry: Mapping[str, Any]) -> str | None:
    condition = str(entry.get("condition") or "")
    if condition not in _HEALTHY:
        return f"condition {condition}"
    if entry.get("readOnly") is True:
        return "read-only"
    return None


def _media(value: object) -> MediaType | None:
    try:
        return MediaType(str(value).lower()) if value else None
    except ValueError:
        return None


def _allowed(filtered: Mapping[str, Any], key: str) -> frozenset[str]:
    """Names that passed spec.listConfig: the only storage localcsi schedules onto."""
    names = filtered.get(key)
    return frozenset(str(n) for n in names) if isinstance(names, list) else frozenset()


def node_of_report(nls: Mapping[str, Any]) -> str:
    return str(section(nls, "spec").get("nodeName") or meta(nls).get("name") or "")


def report_from_nls(nls: Mapping[str, Any]) -> NodeReport:
    """The storage localcsi may schedule onto: only what passed the node's filters."""
    status = section(nls, "status")
    info = section(status, "nodeStorageInfo")
    filtered = section(status, "filteredStorageInfo")
    allowed_vgs = _allowed(filtered, "volumeGroups")
    allowed_devices = _allowed(filtered, "devices")
    allowed_mounts = _allowed(filtered, "mountPoints")
    vgs: list[VgReport] = []
    lv_keys: set[str] = set()
    for vg in items(info, "volumeGroups"):
        name = str(vg.get("name") or "")
        if name not in allowed_vgs:
            continue
        free = byte_count(vg.get("allocatable"))
        size = byte_count(vg.get("total")) - byte_count(vg.get("reserved"))
        vgs.append(VgReport(name, max(size, free), free, _problem(vg)))
        lv_keys.update(str(lv.get("name")) for lv in items(vg, "logicalVolumes"))
    for vg in items(info, "volumeGroups"):  # a Device volume's own VG: its LV is a reported volume
        if is_device_vg(str(vg.get("name") or "")):
            lv_keys.update(str(lv.get("name")) for lv in items(vg, "logicalVolumes"))
    disks = [
        DiskReport(  # the size a Device volume on it gets, after lvm2's metadata (as the driver counts)
            str(d["name"]),
            VolumeType.DEVICE,
            usable_bytes(byte_count(d.get("total"))),
            _media(d.get("mediaType")),
            _problem(d),
        )
        for d in items(info, "deviceInfo")
        if d.get("name") in allowed_devices
    ]
    disks += [
        DiskReport(
            str(m["name"]), VolumeType.MOUNTPOINT, byte_count(m.get("total")), _media(m.get("mediaType")), _problem(m)
        )
        for m in items(info, "mountPoints")
        if m.get("name") in allowed_mounts
    ]
    ours = frozenset(k for k in lv_keys if k.startswith((VOLUME_LV_PREFIX, SNAPSHOT_LV_PREFIX)))
    return NodeReport(node_of_report(nls), tuple(vgs), tuple(disks), ours)


# -- StorageClass ------------------------------------------------------------------------------------


def is_ours(storage_class: Mapping[str, Any]) -> bool:
    return storage_class.get("provisioner") == DRIVER_NAME


def class_params(storage_class: Mapping[str, Any]) -> VolumeParams:
    """The StorageClass's parameters; raises CoreError (InvalidArgument) naming the bad key.

    Remembered per StorageClass object (the cache replaces the object when the class changes): every
    filter and prioritize asks for the class of each of the pod's PVCs."""
    known = _class_params.get(id(storage_class))
    if known is not None and known[0] is storage_class:
        if isinstance(known[1], CoreError):
            raise type(known[1])(known[1].message)  # a new one: raising the same would grow its traceback
        return known[1]
    parameters = storage_class.get("parameters") or {}
    result: VolumeParams | CoreError
    try:
        result = parse_volume_params({str(k): str(v) for k, v in parameters.items()})
    except CoreError as error:
        result = error
    if len(_class_params) >= _CLASS_PARAMS_KEPT:
        _class_params.clear()
    _class_params[id(storage_class)] = (storage_class, result)  # the reference keeps the id from reuse
    if isinstance(result, CoreError):
        raise result
    return result


_CLASS_PARAMS_KEPT = 256
_VOLUME_KEYS_KEPT = 4096
_class_params: dict[int, tuple[Mapping[str, Any], VolumeParams | CoreError]] = {}


# -- PV, PVC, LogicalVolume, inline volumes -------------------------------------------------------------


@functools.lru_cache(maxsize=_VOLUME_KEYS_KEPT)
def _volume_key(csi_name: str) -> str:
    """The LV name the driver gives the volume named ``csi_name``. A name it refuses (over 128
    characters: only a malformed object has one) is never provisioned, so any stable key that cannot
    be a real LV name will do; raising would fail the whole request. Remembered: a pod's claim is
    keyed by filter, then again by the view when its selected-node arrives (sha256 from cold caches,
    about 20 us each; docs/extender.md)."""
    try:
        return volume_lv_name(csi_name)
    except CoreError:
        return "invalid-" + hashlib.sha256(csi_name.encode("utf-8", "surrogatepass")).hexdigest()


def pvc_volume_key(pvc: Mapping[str, Any]) -> str:
    return _volume_key(f"{PVC_NAME_PREFIX}-{meta(pvc).get('uid', '')}")


def requested_bytes(pvc_spec: Mapping[str, Any], default: int) -> int:
    requests = section(section(pvc_spec, "resources"), "requests")
    return byte_count(requests.get("storage"), default) or default


def selected_node(pvc: Mapping[str, Any]) -> str | None:
    annotations = meta(pvc).get("annotations") or {}
    value = annotations.get(SELECTED_NODE_ANNOTATION) if is_mapping(annotations) else None
    return str(value) if value else None


def _affinity_node(pv_spec: Mapping[str, Any]) -> str | None:
    required = section(section(pv_spec, "nodeAffinity"), "required")
    for term in items(required, "nodeSelectorTerms"):
        for expression in items(term, "matchExpressions"):
            values = expression.get("values") or []
            if expression.get("key") == TOPOLOGY_KEY and expression.get("operator") == "In" and len(values) == 1:
                return str(values[0])
    return None


def is_our_pv(pv: Mapping[str, Any]) -> bool:
    return section(section(pv, "spec"), "csi").get("driver") == DRIVER_NAME


def pv_node(pv: Mapping[str, Any]) -> str | None:
    """The node holding one of our PVs: from its volume id, else its node affinity."""
    spec = section(pv, "spec")
    try:
        return parse_volume_id(str(section(spec, "csi").get("volumeHandle") or "")).node
    except CoreError:
        return _affinity_node(spec)


def usage_from_pv(pv: Mapping[str, Any]) -> tuple[str, Usage] | None:
    if not is_our_pv(pv):
        return None
    spec = section(pv, "spec")
    csi = section(spec, "csi")
    size = byte_count(section(spec, "capacity").get("storage"))
    attributes = section(csi, "volumeAttributes")
    kind = str(attributes.get("volumeType") or VolumeType.LVM.value)
    try:
        ref = parse_volume_id(str(csi.get("volumeHandle") or ""))
        if is_exclusive_group(ref.vg):
            # A Device or MountPoint volume: its disk is known to the agent's next report, which then
            # lists the Device volume's LV (lv_keys); until then it takes one fitting free disk.
            exclusive = VolumeType.DEVICE if is_device_vg(ref.vg) else VolumeType.MOUNTPOINT
            return ref.node, Usage(ref.lv, volume_type=exclusive, size_bytes=size)
    except CoreError:
        # A whole disk or mount point: the agent leaves one in use out of its offer, so only a PV
        # naming its disk can say more (and only until the next report).
        node, disk = _affinity_node(spec), attributes.get(EXCLUSIVE_DISK_ATTRIBUTE)
        if node is None or not disk or kind not in (VolumeType.DEVICE.value, VolumeType.MOUNTPOINT.value):
            return None
        key = str(meta(pv).get("name") or "")
        return node, Usage(key, volume_type=VolumeType(kind), disk=str(disk), size_bytes=size)
    lvm_type = _lvm_type(attributes.get("lvmType"))
    return ref.node, Usage(ref.lv, lvm_charge(size, VolumeParams(lvm_type=lvm_type)), ref.vg)


def _lvm_type(value: object) -> LvmType:
    try:
        return LvmType(str(value)) if value else LvmType.LINEAR
    except ValueError:
        return LvmType.LINEAR


def usage_from_logical_volume(obj: Mapping[str, Any]) -> tuple[str, Usage] | None:
    spec = section(obj, "spec")
    node = spec.get("nodeName")
    name = meta(obj).get("name")
    if not node or not name:
        return None
    size = byte_count(spec.get("size"))
    kind = spec.get("volumeType")
    if kind in (VolumeType.DEVICE.value, VolumeType.MOUNTPOINT.value):  # as its PV: one fitting disk, never VG room
        return str(node), Usage(str(name), volume_type=VolumeType(kind), size_bytes=size,
                                media_type=_media(spec.get("mediaType")))  # fmt: skip
    if spec.get("kind") == "Snapshot" and "cowSize" in spec:
        charge = lvm_charge(byte_count(spec.get("cowSize")), VolumeParams())
    else:
        charge = lvm_charge(size, VolumeParams(lvm_type=_lvm_type(spec.get("lvmType"))))
    vg = spec.get("vgName")
    return str(node), Usage(str(name), charge, str(vg) if vg else None)


def pending_usage(pvc: Mapping[str, Any], params: VolumeParams, node: str, default_bytes: int) -> Usage:
    """A PVC committed to ``node`` (selected-node) whose volume does not exist yet."""
    size = requested_bytes(section(pvc, "spec"), default_bytes)
    key = pvc_volume_key(pvc)
    if params.volume_type is VolumeType.LVM:
        return Usage(key, lvm_charge(size, params), params.vg_name)
    return Usage(key, volume_type=params.volume_type, size_bytes=size, media_type=params.media_type)


def inline_volume_key(pod_uid: str, volume_name: str) -> str:
    handle = "csi-" + hashlib.sha256(f"{pod_uid}{volume_name}".encode()).hexdigest()
    return _volume_key(handle)


def inline_volumes(pod: Mapping[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(volume name, volumeAttributes) of the pod's CSI inline volumes for our driver."""
    found: list[tuple[str, dict[str, str]]] = []
    for volume in items(section(pod, "spec"), "volumes"):
        csi = section(volume, "csi")
        if csi.get("driver") == DRIVER_NAME:
            attributes = section(csi, "volumeAttributes")
            found.append((str(volume.get("name") or ""), {str(k): str(v) for k, v in attributes.items()}))
    return found


def inline_params(attributes: Mapping[str, str]) -> VolumeParams:
    """An inline volume's parameters: its volumeAttributes without ``size``; raises CoreError."""
    return parse_volume_params({k: v for k, v in attributes.items() if k != INLINE_SIZE_ATTRIBUTE})


def inline_usages(pod: Mapping[str, Any], default_bytes: int) -> list[Usage]:
    """The room a scheduled pod's inline volumes take on its node (invalid ones take none: they fail)."""
    uid = str(meta(pod).get("uid") or "")
    usages: list[Usage] = []
    for name, attributes in inline_volumes(pod):
        try:
            params = inline_params(attributes)
        except CoreError:
            continue
        size = byte_count(attributes.get(INLINE_SIZE_ATTRIBUTE), default_bytes) or default_bytes
        key = inline_volume_key(uid, name)
        if params.volume_type is VolumeType.LVM:
            usages.append(Usage(key, lvm_charge(size, params), params.vg_name))
        else:
            usages.append(Usage(key, volume_type=params.volume_type, size_bytes=size, media_type=params.media_type))
    return usages
