"""The TypedDicts of localcsi.resources against the CRDs in deploy/crds: the same keys, recursively,
and the same required keys, so that a change to one without the other fails here with its path."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, NotRequired, Required, is_typeddict

import pytest
import yaml

from localcsi.resources.logicalvolume import LogicalVolume
from localcsi.resources.nodelocalstorage import NodeLocalStorage
from localcsi.resources.nodelocalstorageinitconfig import NodeLocalStorageInitConfig

pytestmark = pytest.mark.unit

CRDS = Path(__file__).resolve().parents[3] / "deploy" / "crds"
TYPES: dict[str, Any] = {
    "logicalvolume.yaml": LogicalVolume,
    "nodelocalstorage.yaml": NodeLocalStorage,
    "nodelocalstorageinitconfig.yaml": NodeLocalStorageInitConfig,
}
# The apiserver's own ObjectMeta: a CRD may not declare its fields, and the apiserver always sets it.
APISERVER_OWNED = {".metadata"}


def schema(crd_file: str) -> dict[str, Any]:
    crd = next(doc for doc in yaml.safe_load_all((CRDS / crd_file).read_text()) if doc)
    versions = crd["spec"]["versions"]
    assert len(versions) == 1, f"{crd_file}: compare each served version with its types"
    result: dict[str, Any] = versions[0]["schema"]["openAPIV3Schema"]
    return result


def unwrap(hint: Any) -> tuple[Any, bool | None]:
    """(the type inside NotRequired/Required, whether it says required; None if it says neither)."""
    origin = typing.get_origin(hint)
    if origin is NotRequired:
        return typing.get_args(hint)[0], False
    if origin is Required:
        return typing.get_args(hint)[0], True
    return hint, None


def nested(hint: Any) -> tuple[Any, int]:
    """The TypedDict a hint holds (through list[...] and | None) and how many lists deep; (None, 0) if none."""
    origin = typing.get_origin(hint)
    if is_typeddict(hint):
        return hint, 0
    if origin is list:
        inner, depth = nested(typing.get_args(hint)[0])
        return inner, depth + 1 if inner is not None else 0
    if origin in (typing.Union, types.UnionType):
        found = [nested(arg) for arg in typing.get_args(hint) if arg is not type(None)]
        return next(((td, depth) for td, depth in found if td is not None), (None, 0))
    return None, 0


def items_of(node: dict[str, Any], depth: int) -> dict[str, Any]:
    for _ in range(depth):
        node = node.get("items") or {}
    return node


def drift(node: dict[str, Any], typed: Any, path: str) -> list[str]:
    """Every difference between a CRD object schema and a TypedDict, with its JSON path."""
    hints = typing.get_type_hints(typed, include_extras=True)
    declared = node.get("properties") or {}
    found = [f"{path}.{key}: in the CRD, not in {typed.__name__}" for key in sorted(set(declared) - set(hints))]
    found += [f"{path}.{key}: in {typed.__name__}, not in the CRD" for key in sorted(set(hints) - set(declared))]
    required = set(node.get("required") or [])
    for key in sorted(set(declared) & set(hints)):
        hint, says = unwrap(hints[key])
        is_required = says if says is not None else bool(typed.__total__)
        if f"{path}.{key}" not in APISERVER_OWNED and is_required != (key in required):
            found.append(f"{path}.{key}: required {key in required} in the CRD, {is_required} in {typed.__name__}")
        inner, depth = nested(hint)
        child = items_of(declared[key], depth)
        if f"{path}.{key}" in APISERVER_OWNED:
            continue
        if inner is not None and "properties" not in child:
            found.append(f"{path}.{key}: {typed.__name__} nests {inner.__name__}, the CRD declares no properties")
        elif inner is None and "properties" in child:
            found.append(f"{path}.{key}: the CRD declares properties, {typed.__name__} nests no TypedDict")
        elif inner is not None:
            found += drift(child, inner, f"{path}.{key}" + "[]" * depth)
    return found


@pytest.mark.parametrize("crd_file", sorted(TYPES))
def test_the_typeddicts_match_the_crd(crd_file: str) -> None:
    assert drift(schema(crd_file), TYPES[crd_file], "") == [], f"deploy/crds/{crd_file} and localcsi.resources differ"


def test_every_crd_has_its_typeddict() -> None:
    assert sorted(path.name for path in CRDS.glob("*.yaml")) == sorted(TYPES)


class _Inner(typing.TypedDict):
    a: int


class _Outer(typing.TypedDict):
    spec: _Inner
    extra: NotRequired[list[_Inner]]


def test_drift_names_each_difference_with_its_path() -> None:
    crd = {
        "properties": {
            "spec": {"properties": {"a": {}, "b": {}}},
            "extra": {"items": {}},
            "other": {},
        },
        "required": ["extra"],
    }
    assert drift(crd, _Outer, "") == [
        ".other: in the CRD, not in _Outer",
        ".extra: required True in the CRD, False in _Outer",
        ".extra: _Outer nests _Inner, the CRD declares no properties",
        ".spec: required False in the CRD, True in _Outer",
        ".spec.b: in the CRD, not in _Inner",
        ".spec.a: required False in the CRD, True in _Inner",
    ]
