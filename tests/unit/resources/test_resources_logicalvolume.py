"""The LogicalVolume resource's own helpers: status codes to core errors and back, node labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from localcsi.core.errors import ALL_ERRORS, Internal, NotFound, ResourceExhausted
from localcsi.resources import logicalvolume as llv

pytestmark = pytest.mark.unit

CRD = Path(__file__).resolve().parents[3] / "deploy" / "crds" / "logicalvolume.yaml"
NODE = "node-1"


def failed(code: str, message: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": llv.Phase.FAILED.value, "code": code}
    if message is not None:
        status["message"] = message
    return {"metadata": {"name": "csi-1"}, "spec": {"nodeName": NODE, "vgName": "localcsi-a"}, "status": status}


@pytest.mark.parametrize("kind", ALL_ERRORS)
def test_every_core_error_round_trips_through_status_code(kind: type[Any]) -> None:
    code = llv.code_name(kind.code)
    assert code[0].isupper() and "_" not in code
    error = llv.error_from_status(failed(code, "vg full"))
    assert type(error) is kind
    assert error.message == f"node {NODE}: vg full"


def test_status_codes_named_in_the_crd_are_exactly_the_core_errors() -> None:
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    enum = schema["properties"]["status"]["properties"]["code"]["enum"]
    assert sorted(enum) == sorted(llv.code_name(kind.code) for kind in ALL_ERRORS)
    assert llv.code_name(ResourceExhausted.code) == "ResourceExhausted"


def test_an_unknown_status_code_is_internal_with_the_agents_message() -> None:
    error = llv.error_from_status(failed("Bogus"))
    assert isinstance(error, Internal) and "Bogus" in error.message
    assert not isinstance(error, NotFound)


def test_node_names_become_label_values_and_long_ones_are_hashed() -> None:
    assert llv.node_label_value("node-1.example") == "node-1.example"
    long = "n" * 70
    hashed = llv.node_label_value(long)
    assert hashed != long and len(hashed) <= 63 and hashed == llv.node_label_value(long)
    assert llv.node_label_value("a" * 63) == "a" * 63
    assert llv.node_selector("node-1") == "localcsi.io/node=node-1"
