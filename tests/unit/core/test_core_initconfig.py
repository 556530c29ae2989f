import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcsi.core.initconfig import (
    InvalidSelectorError,
    contains,
    invalid_entries,
    node_spec,
    selector_matches,
    selector_problem,
    spec_digest,
)

pytestmark = pytest.mark.unit

GLOBAL = {
    "listConfig": {
        "devices": {"include": ["^vd[b-z]$"]},
        "vgs": {"include": ["^localcsi-pool-[0-9]+$"]},
    },
    "resourceToBeInited": {"vgs": [{"name": "localcsi-pool-0", "devices": ["/dev/vdb"]}]},
}
SSD_VGS = [{"name": "localcsi-ssd", "devices": ["/dev/nvme0n1"]}]


def spec_with(*nodes_config: object) -> dict[str, object]:
    return {"globalConfig": copy.deepcopy(GLOBAL), "nodesConfig": [copy.deepcopy(n) for n in nodes_config]}


# --- selectors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {}, True),
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"disk": "ssd"}}, {"disk": "ssd", "zone": "a"}, True),
        ({"matchLabels": {"disk": "ssd"}}, {"disk": "hdd"}, False),
        ({"matchLabels": {"disk": "ssd"}}, {}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}, {"zone": "b"}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}, {"zone": "c"}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}, {}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, {"zone": "b"}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, {"zone": "a"}, False),
        # Kubernetes: NotIn matches objects that do not have the label at all.
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        ({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, {"gpu": ""}, True),
        ({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, {}, True),
        ({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, {"gpu": "x"}, False),
        # matchLabels and every expression are ANDed.
        (
            {"matchLabels": {"disk": "ssd"}, "matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
            {"disk": "ssd"},
            False,
        ),
        (
            {"matchLabels": {"example.com/disk": "ssd"}, "matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
            {"example.com/disk": "ssd", "gpu": "1"},
            True,
        ),
    ],
)
def test_selector_matches_like_kubernetes(selector: dict[str, object], labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(selector, labels) is expected


def test_missing_selector_matches_nothing_and_empty_one_everything() -> None:
    assert selector_matches(None, {"a": "b"}) is False
    assert selector_matches({"matchLabels": {}, "matchExpressions": []}, {"a": "b"}) is True


@pytest.mark.parametrize(
    ("selector", "fragment"),
    [
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": []}]}, "needs at least one value"),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn"}]}, "needs at least one value"),
        ({"matchExpressions": [{"key": "zone", "operator": "Exists", "values": ["a"]}]}, "takes no values"),
        ({"matchExpressions": [{"key": "zone", "operator": "Equals", "values": ["a"]}]}, "'Equals' is not one of"),
        ({"matchExpressions": [{"key": "-zone", "operator": "Exists"}]}, "label key '-zone'"),
        ({"matchExpressions": [{"key": "Example.COM/zone", "operator": "Exists"}]}, "prefix must be a DNS subdomain"),
        ({"matchExpressions": [{"key": "/zone", "operator": "Exists"}]}, "prefix must be a DNS subdomain"),
        ({"matchLabels": {"zone": "a b"}}, "value 'a b'"),
        ({"matchLabels": {"zone": "x" * 64}}, "1-63 characters"),
        ({"matchLabels": {"k" * 64: "a"}}, "the name must be 1-63"),
        ({"matchLabels": ["zone"]}, "matchLabels must be an object"),
        ("zone=a", "selector must be an object"),
    ],
)
def test_invalid_selectors_are_explained_and_refused(selector: object, fragment: str) -> None:
    problem = selector_problem(selector)
    assert problem is not None and fragment in problem
    with pytest.raises(InvalidSelectorError, match=r"\w"):
        selector_matches(selector, {"zone": "a"})  # type: ignore[arg-type]


def test_valid_selector_edge_cases_have_no_problem() -> None:
    assert selector_problem({"matchLabels": {"example.com/a_b.c-d": ""}}) is None
    assert selector_problem({"matchLabels": {"k" * 63: "v" * 63}}) is None
    assert selector_problem(None) is None


# --- the merge rule --------------------------------------------------------------------------------


def test_node_without_a_matching_entry_gets_the_global_config() -> None:
    spec = spec_with({"selector": {"matchLabels": {"disk": "ssd"}}, "resourceToBeInited": {"vgs": SSD_VGS}})
    result = node_spec(spec, "node-1", {"disk": "hdd"})
    assert result.spec == {**GLOBAL, "nodeName": "node-1"}
    assert result.applied == ()


def test_entry_that_sets_every_section_is_used_as_is() -> None:
    specific = {
        "listConfig": {"devices": {"include": ["^nvme"]}, "vgs": {"include": ["^ssd$"]}, "mountPoints": {}},
        "resourceToBeInited": {"vgs": SSD_VGS, "mountpoints": []},
    }
    spec = spec_with({"selector": {"matchLabels": {"disk": "ssd"}}, **specific})
    result = node_spec(spec, "node-2", {"disk": "ssd"})
    assert result.spec == {**specific, "nodeName": "node-2"}
    assert result.applied == (0,)


def test_partial_entry_replaces_only_the_sections_it_sets() -> None:
    spec = spec_with({"selector": {"matchLabels": {"disk": "ssd"}}, "resourceToBeInited": {"vgs": SSD_VGS}})
    result = node_spec(spec, "node-2", {"disk": "ssd"})
    # resourceToBeInited.vgs replaced wholesale (not appended); listConfig inherited from globalConfig.
    assert result.spec["resourceToBeInited"] == {"vgs": SSD_VGS}
    assert result.spec["listConfig"] == GLOBAL["listConfig"]


def test_sub_sections_replace_independently() -> None:
    spec = spec_with({"selector": {}, "listConfig": {"vgs": {"include": ["^ssd$"], "exclude": ["^ssd-old$"]}}})
    result = node_spec(spec, "n", {})
    assert result.spec["listConfig"] == {
        "devices": {"include": ["^vd[b-z]$"]},
        "vgs": {"include": ["^ssd$"], "exclude": ["^ssd-old$"]},
    }


def test_matching_entries_apply_in_order_and_later_ones_win() -> None:
    spec = spec_with(
        {"selector": {"matchLabels": {"disk": "ssd"}}, "resourceToBeInited": {"vgs": SSD_VGS}, "reservedSpace": "1"},
        {"selector": {"matchLabels": {"zone": "a"}}, "reservedSpace": {"percent": 10}},
        {"selector": {"matchLabels": {"zone": "b"}}, "reservedSpace": {"percent": 20}},
    )
    both = node_spec(spec, "n", {"disk": "ssd", "zone": "a"})
    assert both.applied == (0, 1)
    assert both.spec["reservedSpace"] == {"percent": 10}
    assert both.spec["resourceToBeInited"] == {"vgs": SSD_VGS}
    only_zone_b = node_spec(spec, "n", {"zone": "b"})
    assert only_zone_b.applied == (2,)
    assert only_zone_b.spec["resourceToBeInited"] == GLOBAL["resourceToBeInited"]


def test_empty_section_clears_an_inherited_one() -> None:
    spec = spec_with({"selector": {}, "resourceToBeInited": {"vgs": []}})
    assert node_spec(spec, "n", {}).spec["resourceToBeInited"] == {"vgs": []}


def test_invalid_entry_matches_no_node_but_the_others_still_apply() -> None:
    spec = spec_with(
        {"selector": {"matchExpressions": [{"key": "zone", "operator": "In"}]}, "reservedSpace": {"percent": 50}},
        {"selector": {"matchLabels": {"zone": "a"}}, "resourceToBeInited": {"vgs": SSD_VGS}},
        "not an object",
        {"resourceToBeInited": {"vgs": []}},  # no selector: matches nothing, valid
    )
    result = node_spec(spec, "n", {"zone": "a"})
    assert result.applied == (1,)
    assert "reservedSpace" not in result.spec
    problems = invalid_entries(spec)
    assert sorted(problems) == [0, 2]
    assert "needs at least one value" in problems[0]


def test_merge_never_aliases_or_mutates_the_init_config() -> None:
    spec = spec_with({"selector": {}, "resourceToBeInited": {"vgs": SSD_VGS}})
    before = copy.deepcopy(spec)
    result = node_spec(spec, "n", {})
    result.spec["listConfig"]["vgs"]["include"].append("x")  # type: ignore[index]
    result.spec["resourceToBeInited"]["vgs"][0]["name"] = "y"  # type: ignore[index]
    assert spec == before


def test_empty_init_config_gives_only_the_node_name() -> None:
    assert node_spec({}, "n", {}).spec == {"nodeName": "n"}
    assert node_spec({"nodesConfig": None, "globalConfig": None}, "n", {}).spec == {"nodeName": "n"}


labels_strategy = st.dictionaries(st.sampled_from(["disk", "zone", "gpu"]), st.sampled_from(["a", "b", ""]))


@given(labels_strategy)
def test_nodes_outside_every_selector_get_exactly_global(labels: dict[str, str]) -> None:
    spec = spec_with(
        {"selector": {"matchLabels": {"disk": "ssd"}}, "listConfig": {"vgs": {"include": ["^ssd$"]}}},
        {"selector": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z"]}]}, "reservedSpace": 1},
    )
    result = node_spec(spec, "n", labels)
    assert result.applied == ()
    assert result.spec == {**GLOBAL, "nodeName": "n"}


# --- comparing with what the apiserver stored ------------------------------------------------------


def test_contains_accepts_defaults_added_by_the_apiserver() -> None:
    desired = {"listConfig": {"vgs": {"include": ["a"]}}, "nodeName": "n"}
    stored = {"listConfig": {"vgs": {"include": ["a"], "exclude": []}}, "nodeName": "n", "extra": 1}
    assert contains(stored, desired)
    assert not contains(desired, stored)


@pytest.mark.parametrize(
    "stored",
    [
        {"listConfig": {"vgs": {"include": ["b"]}}, "nodeName": "n"},
        {"listConfig": {"vgs": {"include": ["a", "b"]}}, "nodeName": "n"},
        {"listConfig": {"vgs": {}}, "nodeName": "n"},
        {"nodeName": "n"},
        {"listConfig": {"vgs": {"include": "a"}}, "nodeName": "n"},
    ],
)
def test_contains_detects_any_difference_in_what_we_set(stored: dict[str, object]) -> None:
    assert not contains(stored, {"listConfig": {"vgs": {"include": ["a"]}}, "nodeName": "n"})


def test_spec_digest_is_stable_and_sensitive() -> None:
    a = {"x": [1, 2], "y": {"b": 1, "a": 2}}
    reordered = {"y": {"a": 2, "b": 1}, "x": [1, 2]}
    assert spec_digest(a) == spec_digest(reordered)
    assert spec_digest(a) != spec_digest({"x": [2, 1], "y": {"b": 1, "a": 2}})
    assert len(spec_digest(a)) == 16
