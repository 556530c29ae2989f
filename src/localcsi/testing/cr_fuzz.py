"""Hypothesis strategies for our three custom resources: the CRD schemas' shapes with hostile values.

Each strategy builds an object that is valid more often than not, then replaces values at random with
wrong types, huge and negative numbers, empty, overlong and non-ASCII strings, regexes that do not
compile (or compile in RE2 but not in Python's re), device paths with ``..``, bad selector operators,
duplicate list-map keys, and unknown fields. What the apiserver admits is handed to localcsi's code by
tests/cluster/test_cr_fuzz.py. Numbers stay within int64 and strings are valid UTF-8: beyond that the
apiserver refuses the request body itself (400), before any CRD sees it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

Obj = dict[str, Any]
INT64 = 2**63 - 1

FUZZ_NODE = "fuzz-node"  # the agent's node in the LogicalVolume checks
FUZZ_VG = "localcsi-a"
SOURCE_VOLUME = "csi-fuzzsource"  # a ready volume on FUZZ_NODE in FUZZ_VG, for snapshots and clones
NODE_LABELS: dict[str, dict[str, str]] = {
    "a": {"zone": "a"},
    "b": {"zone": "b", "disk": "ssd"},
    "ssd": {"example.com/disk": "ssd"},
    "plain": {},
}
# The synthetic node's devices (tests/cluster/test_cr_fuzz.py), so that some entries name real ones.
KNOWN_DEVICES = ("/dev/vdb", "/dev/vdc", "/dev/vdc1", "/dev/vdd", "/dev/vde", "/dev/nvme0n1", "/dev/sda")

_counter = itertools.count()

hostile_text = st.one_of(
    st.sampled_from(["", " ", "-", ".", "..", "a" * 300, "é", "nœud-ü", "名前", "\u200b", "a\nb", "x" * 5000]),
    st.text(max_size=12),
)
hostile_number = st.one_of(
    st.sampled_from([0, -1, 1, -(2**63), INT64, 2**53 + 1, 4096, 1.5, -0.0, 1e300]),
    st.integers(-(2**63), INT64),
)
wrong_type = st.one_of(
    st.none(), st.booleans(), hostile_number, hostile_text, st.just([]), st.just({}), st.just([1, "a", None])
)


@st.composite
def _some_of(
    draw: st.DrawFn, required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> Obj:
    made = {key: draw(value) for key, value in required.items()}
    for key, value in optional.items():
        # Unknown fields are rare: the apiserver prunes them, which is worth seeing, not every time.
        odds = [True] + [False] * 7 if key.startswith("unknown") else [True, True, True, False]
        if draw(st.sampled_from(odds)):
            made[key] = draw(value)
    return made


def some_of(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]] | None = None
) -> st.SearchStrategy[Obj]:
    """An object with every required key and each optional one three times in four."""
    return _some_of(required, optional or {})


# One in HOSTILITY[0] values is hostile; 0 makes every value valid. Set per example by the top-level
# strategies (hypothesis draws a composite's parts in order, in one thread).
HOSTILITY = [8]


@st.composite
def _maybe(draw: st.DrawFn, valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
    odds = HOSTILITY[0]
    return draw(hostile) if odds and draw(st.sampled_from(range(odds))) == 0 else draw(valid)


def maybe(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any] = wrong_type) -> st.SearchStrategy[Any]:
    """Mostly ``valid``, sometimes a hostile value (see HOSTILITY)."""
    return _maybe(valid, hostile)


def set_hostility(draw: st.DrawFn) -> None:
    """Half the objects are meant to be valid, the others carry hostile values at some rate."""
    HOSTILITY[0] = draw(st.sampled_from([0, 0, 4, 8, 16]))


def _unique_name(transform: str) -> str:
    base = f"fz-{next(_counter)}"
    return {
        "ok": base,
        "upper": base.upper(),
        "unicode": f"{base}-ü",
        "long": base + "-" + "a" * 260,
        "slash": f"{base}/x",
        "empty": "",
        "dash": f"-{base}",
    }[transform]


name_transforms = maybe(st.just("ok"), st.sampled_from(["upper", "unicode", "long", "slash", "empty", "dash"]))

# -- NodeLocalStorage spec sections (shared with the init config) ---------------------------------

# What an operator writes, then what RE2 refuses, or accepts where Python's re does not.
good_regex = st.sampled_from(
    ["^vd[b-d]$", "^/dev/vd[a-d]+", "^localcsi-.*$", "^localcsi-pool-[0-9]+$", "^share$", ".*", "^/mnt/localcsi/"]
)
# fmt: off
odd_regex = st.one_of(
    st.sampled_from([
        "(a|b)+", "x{1,3}", "[", "(?P<x", "a**", "(", "\\", "a{2,1}", "\\z", "[[:alpha:]]+", "(?<n>x)", "\\pL+",
        "(?i)VDB", "\\Q.*\\E", "é+", "a" * 257, "x{1001}", "(?U)a+", "\\C", "[a-\\d]",
    ]),
    st.text(max_size=10),
)
# fmt: on
regex = maybe(good_regex, odd_regex | wrong_type)
regex_list = maybe(st.lists(regex, min_size=1, max_size=4), st.just(["x"] * 65) | wrong_type)
name_filter = some_of({}, optional={"include": maybe(regex_list), "exclude": maybe(regex_list)})
list_config = some_of(
    {}, optional={"devices": maybe(name_filter), "vgs": maybe(name_filter), "mountPoints": maybe(name_filter)}
)
vg_name = maybe(
    st.sampled_from(["localcsi-pool-0", "localcsi-a", "share", "vg_1", "vg+."]),
    st.sampled_from(["-bad", ".", "..", "a b", "x" * 128, ""]) | wrong_type,
)
bad_device = st.sampled_from(
    ["/dev/../etc/passwd", "/dev/vdb/..", "/dev/./vdb", "/dev/", "vdb", "/dev/vd b", "/dev/vdé", "/dev/" + "x" * 260]
)
device_path = maybe(
    st.sampled_from([*KNOWN_DEVICES, "/dev/disk/by-id/virtio-abc", "/dev/vdz", "/dev/vdb..x"]),
    bad_device | st.just("/dev/vdb\n") | hostile_text,
)
vg_entry = some_of(
    {"name": vg_name, "devices": maybe(st.lists(device_path, min_size=1, max_size=3))},
    optional={"unknownField": wrong_type},
)
mount_entry = some_of(
    {
        "path": maybe(
            st.sampled_from(["/mnt/localcsi/a", "/mnt/b", "/mnt/localcsi/c"]),
            st.sampled_from(["/", "/mnt/../etc", "mnt", "/mnt/é", "/mnt/a/."]) | wrong_type,
        ),
        "device": device_path,
    },
    optional={
        "fsType": maybe(st.sampled_from(["ext4", "xfs"]), st.sampled_from(["btrfs", ""]) | wrong_type),
        "options": maybe(
            st.lists(
                maybe(
                    st.sampled_from(["noatime", "discard", "uid=0", "x-systemd.automount"]),
                    st.sampled_from(["a,b", "a b", "é", "a'b", 'a"b', "#"]) | wrong_type,
                )
            )
        ),
    },
)
quantity = maybe(
    st.integers(0, INT64) | st.sampled_from(["10Gi", "1.5Ti", "500M", "0", "9" * 30, "99999999999Ei", "0.5"]),
    st.sampled_from([-1, -5, "-1", "1e3", "10gi", "", "9" * 40, "1.", "Gi"]) | wrong_type,
)
reserved_entry = some_of(
    {"vgName": vg_name},
    optional={"size": quantity, "percent": maybe(st.integers(0, 90), st.integers(-10, 200) | wrong_type)},
)


def _list_with_duplicates(entry: st.SearchStrategy[Obj]) -> st.SearchStrategy[Any]:
    lists: st.SearchStrategy[list[Obj]] = st.lists(entry, min_size=1, max_size=3) | st.just([])
    return maybe(lists, lists.map(lambda items: items + items[:1]) | wrong_type)


resource_to_be_inited = some_of(
    {}, optional={"vgs": _list_with_duplicates(vg_entry), "mountpoints": _list_with_duplicates(mount_entry)}
)
sections: dict[str, st.SearchStrategy[Any]] = {
    "listConfig": maybe(list_config),
    "resourceToBeInited": maybe(resource_to_be_inited),
    "reservedSpace": _list_with_duplicates(reserved_entry),
    "unknownSection": wrong_type,
}
storage_sections = some_of({}, optional=sections)


@st.composite
def node_local_storage(draw: st.DrawFn) -> Obj:
    set_hostility(draw)
    name = _unique_name(draw(name_transforms))
    spec: Obj = draw(storage_sections)
    node_name = draw(maybe(st.just("same"), st.sampled_from(["other", "absent", "hostile"])))
    if node_name == "same":
        spec["nodeName"] = name
    elif node_name == "other":
        spec["nodeName"] = name + "-other"
    elif node_name == "hostile":
        spec["nodeName"] = draw(wrong_type)
    return {"metadata": {"name": name}, "spec": spec}


# -- NodeLocalStorageInitConfig ------------------------------------------------------------------

label_key = maybe(
    st.sampled_from(["zone", "disk", "example.com/disk", "absent"]),
    st.sampled_from(["bad key!", "", "-x", "a/b/c", "x" * 64, "Example.com/x"]),
)
label_value = maybe(st.sampled_from(["a", "b", "ssd", ""]), st.sampled_from(["bad value!", "x" * 64, "é", "-a"]))


@st.composite
def expression(draw: st.DrawFn) -> Obj:
    operator = draw(
        maybe(
            st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]), st.sampled_from(["Gt", "in", ""]) | wrong_type
        )
    )
    made: Obj = {"key": draw(label_key), "operator": operator}
    wants_values = operator in ("In", "NotIn")
    if draw(maybe(st.just(wants_values), st.just(not wants_values))):
        made["values"] = draw(maybe(st.lists(label_value, min_size=1, max_size=3), st.just([]) | wrong_type))
    return made


selector = some_of(
    {},
    optional={
        "matchLabels": maybe(st.dictionaries(label_key, maybe(label_value), max_size=3)),
        "matchExpressions": maybe(st.lists(expression(), max_size=3)),
    },
)


@st.composite
def init_config(draw: st.DrawFn) -> Obj:
    set_hostility(draw)
    spec: Obj = {}
    if draw(st.booleans()):
        spec["globalConfig"] = draw(maybe(storage_sections))
    entry = some_of({"selector": maybe(selector)}, optional=sections)
    if draw(st.booleans()):
        spec["nodesConfig"] = draw(maybe(st.lists(entry, max_size=4)))
    if draw(st.integers(0, 9)) == 0:
        spec["unknownTopLevel"] = draw(wrong_type)
    return {"metadata": {"name": _unique_name(draw(name_transforms))}, "spec": spec}


# -- LogicalVolume -------------------------------------------------------------------------------


def _volume(lv: str) -> Obj:
    return {
        "nodeName": FUZZ_NODE,
        "vgName": FUZZ_VG,
        "kind": "Volume",
        "csiName": f"pvc-{lv}",
        "size": 1 << 30,
        "requiredBytes": 1 << 30,
        "lvmType": "linear",
        "fsType": "ext4",
        "accessType": "mount",
    }


_SOURCE_ID = f"{FUZZ_NODE}/{FUZZ_VG}/{SOURCE_VOLUME}"
# Valid specs of every shape the CSI controller writes; the fuzzer then breaks them.
SHAPES: dict[str, Callable[[str], Obj]] = {
    "linear": _volume,
    "thin": lambda lv: {
        **_volume(lv),
        "lvmType": "thin",
        "thinPool": "pool0",
        "parameters": {"overprovisioning": "2"},
    },
    "striping": lambda lv: {**_volume(lv), "lvmType": "striping", "stripes": 2, "stripeSize": 65536},
    "io-limits": lambda lv: {**_volume(lv), "ioLimits": {"bps": "1048576", "readIops": "100"}},
    "clone": lambda lv: {
        **_volume(lv),
        "source": {"kind": "Volume", "id": _SOURCE_ID, "fill": "block-copy", "size": 1 << 30},
    },
    "restore": lambda lv: {
        **_volume(lv),
        "source": {"kind": "Snapshot", "id": f"{FUZZ_NODE}/{FUZZ_VG}/snap-x", "fill": "block-copy", "size": 1 << 30},
    },
    "snapshot": lambda lv: {
        "nodeName": FUZZ_NODE,
        "vgName": FUZZ_VG,
        "kind": "Snapshot",
        "csiName": f"snapcontent-{lv}",
        "size": 1 << 30,
        "cowSize": 1 << 28,
        "source": {"kind": "Volume", "id": _SOURCE_ID},
    },
    "device": lambda lv: {
        **_volume(lv),
        "volumeType": "Device",
        "vgName": f"localcsi-dev-{lv[-8:]}",
        "mediaType": "ssd",
        "limitBytes": 0,
    },
    "mountpoint": lambda lv: {
        **{k: v for k, v in _volume(lv).items() if k != "lvmType"},
        "volumeType": "MountPoint",
        "vgName": "localcsi-mountpoint",
    },
}
LV_FIELDS = (
    "nodeName",
    "vgName",
    "kind",
    "csiName",
    "size",
    "requiredBytes",
    "lvmType",
    "thinPool",
    "stripes",
    "stripeSize",
    "source",
    "fsType",
    "accessType",
    "parameters",
    "ioLimits",
    "cowSize",
    "volumeType",
    "mediaType",
    "limitBytes",
)
_lv_values: dict[str, st.SearchStrategy[Any]] = {
    "nodeName": st.sampled_from([FUZZ_NODE, "other-node", "Fuzz_Node", "-x", "a" * 254]),
    "vgName": vg_name,
    "kind": st.sampled_from(["Volume", "Snapshot", "volume", ""]),
    "csiName": hostile_text | st.sampled_from(["é" * 128, "名" * 128, "x" * 128, "\x00", "a=b c", "pvc/1", "#"]),
    "size": hostile_number,
    "requiredBytes": hostile_number,
    "lvmType": st.sampled_from(["linear", "striping", "raid1", "thin", "mirror"]),
    "thinPool": st.sampled_from(["pool0", "missing-pool", "-x", ""]),
    "stripes": st.integers(-1, 200),
    "stripeSize": hostile_number,
    "source": some_of(
        {
            "kind": st.sampled_from(["Volume", "Snapshot", "Pod"]),
            "id": st.sampled_from(
                [
                    _SOURCE_ID,
                    f"{FUZZ_NODE}/{FUZZ_VG}/csi-gone",
                    "other/vg/csi-x",
                    "a/b",
                    "x" * 200,
                    f"{FUZZ_NODE}/../csi-x",
                ]
            ),
        },
        optional={
            "fill": st.sampled_from(["thin-snapshot", "block-copy", "rsync"]),
            "thin": wrong_type,
            "size": hostile_number,
        },
    ),
    "fsType": st.sampled_from(["ext4", "xfs", "btrfs"]),
    "accessType": st.sampled_from(["mount", "block", "raw"]),
    "parameters": st.dictionaries(
        st.sampled_from(["overprovisioning", "other"]), st.sampled_from(["2", "3/2", "0", "0/0", "x"])
    ),
    "ioLimits": st.dictionaries(
        st.sampled_from(["bps", "iops", "readBps", "bogus"]),
        st.sampled_from(["0", "1", "9" * 19, "18446744073709551616", "-1", ""]),
    ),
    "cowSize": hostile_number,
    "volumeType": st.sampled_from(["LVM", "Device", "MountPoint", "Other"]),
    "mediaType": st.sampled_from(["ssd", "hdd", "nvme"]),
    "limitBytes": hostile_number,
}


@st.composite
def logical_volume(draw: st.DrawFn) -> Obj:
    shape = draw(st.sampled_from(sorted(SHAPES)))
    prefix = "snap" if shape == "snapshot" else "csi"
    lv = f"{prefix}-{next(_counter):08x}"
    spec = SHAPES[shape](lv)
    for key in draw(st.lists(st.sampled_from(LV_FIELDS), max_size=3, unique=True)):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            spec.pop(key, None)
        elif choice == 1:
            spec[key] = draw(wrong_type)
        else:
            spec[key] = draw(_lv_values[key])
    if draw(st.integers(0, 9)) == 0:
        spec["unknownField"] = draw(wrong_type)
    name = draw(st.sampled_from([lv] * 8 + [lv.upper(), f"x{lv}", lv + "-é"]))
    labels = {"localcsi.io/node": FUZZ_NODE}
    return {"metadata": {"name": name, "labels": labels}, "spec": spec}
