import json
import random

import pytest
from extender_objects import pod

from localcsi.extender.protocol import (
    ExtenderArgs,
    ProtocolError,
    RequestCache,
    encode,
    encode_filter_result,
    encode_ranks,
    error_result,
    filter_result,
    host_priorities,
    parse_args,
)

pytestmark = pytest.mark.unit

# The keys kube-scheduler marshals: k8s.io/kube-scheduler/extender/v1 has no JSON tags, so Go field names.
FILTER_RESULT_KEYS = {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_node_cache_capable_args_carry_node_names() -> None:
    args = parse_args(body(Pod=pod("p"), Nodes=None, NodeNames=["n1", "n2"]))
    assert args.node_names == ["n1", "n2"]
    assert args.nodes is None
    assert args.pod["metadata"]["uid"] == "uid-p"


def test_keys_match_case_insensitively_like_gos_decoder() -> None:
    args = parse_args(body(pod=pod("p"), nodenames=["n1"]))
    assert args.node_names == ["n1"]


def test_a_node_list_is_accepted_when_node_names_are_absent() -> None:
    nodes = {"items": [{"metadata": {"name": "n1"}}, {"metadata": {"name": "n2"}, "spec": {}}]}
    args = parse_args(body(Pod=pod("p"), Nodes=nodes))
    assert args.node_names == ["n1", "n2"]
    assert args.nodes == nodes["items"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "request body is not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (body(NodeNames=["n1"]), "Pod is required"),
        (body(Pod={"spec": {}}, NodeNames=[]), "Pod.metadata is required"),
        (body(Pod={"metadata": {"name": "p"}}, NodeNames=[]), "Pod.metadata.uid is required"),
        (body(Pod={"metadata": {"name": "p", "uid": "u", "namespace": 3}}, NodeNames=[]), "namespace must be"),
        (body(Pod={"metadata": {"name": "p", "uid": "u"}, "spec": []}, NodeNames=[]), "Pod.spec must be"),
        (body(Pod={"metadata": {"name": "p", "uid": "u"}, "spec": {"volumes": [1]}}, NodeNames=[]), "volumes"),
        (body(Pod=pod("p")), "needs NodeNames"),
        (body(Pod=pod("p"), NodeNames="n1"), "NodeNames must be a list of strings"),
        (body(Pod=pod("p"), NodeNames=["n1", 2]), "NodeNames must be a list of strings"),
        (body(Pod=pod("p"), Nodes={"items": "x"}), "Nodes must be a v1 NodeList"),
        (body(Pod=pod("p"), Nodes={"items": [{"metadata": {}}]}), "needs metadata.name"),
        (b"\xff\xfe", "request body is not JSON"),
        # Found by the fuzz test: json.loads raises ValueError and RecursionError, not JSONDecodeError,
        # for these, and they escaped the server without an answer.
        (b'{"Pod":' + b"9" * 5000 + b"}", "request body is not JSON: Exceeds the limit"),
        (b'{"Pod":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        # and a lone surrogate in the pod's uid made inline_volume_key's encode() fail: a 500
        (body(Pod=pod("p", uid="\ud800"), NodeNames=[]), "lone UTF-16 surrogate"),
        (body(Pod=pod("p"), NodeNames=["\udfff"]), "lone UTF-16 surrogate"),
    ],
)
def test_malformed_requests_say_what_is_wrong(raw: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        parse_args(raw)


@pytest.mark.parametrize("value", [b"9" * 5000, b"[" * 100_000 + b"]" * 100_000])
def test_a_head_that_cannot_be_decoded_before_a_remembered_array_is_a_protocol_error(value: bytes) -> None:
    names = RequestCache()
    parse_args(go_body(pod("p"), NAMES), names)
    raw = b'{"Pod":' + value + b',"NodeNames":' + json.dumps(NAMES, separators=(",", ":")).encode() + b"}"
    with pytest.raises(ProtocolError):
        parse_args(raw, names)


def test_a_lone_surrogate_is_refused_also_before_a_remembered_array_and_a_pair_is_not() -> None:
    names = RequestCache()
    parse_args(go_body(pod("p"), NAMES), names)
    with pytest.raises(ProtocolError, match="surrogate"):
        parse_args(go_body(pod("p", uid="\ud800"), NAMES), names)
    assert parse_args(go_body(pod("p", uid="\U0001f600"), NAMES), names).pod["metadata"]["uid"] == "\U0001f600"


def test_filter_result_answers_with_node_names_and_the_exact_keys() -> None:
    args = ExtenderArgs(pod("p"), ["n1", "n2", "n3"])
    result = json.loads(encode(filter_result(args, ["n1"], {"n2": "full", "n3": "full"})))
    assert set(result) == FILTER_RESULT_KEYS
    assert result["NodeNames"] == ["n1"]
    assert result["FailedAndUnresolvableNodes"] == {"n2": "full", "n3": "full"}
    assert (result["Nodes"], result["FailedNodes"], result["Error"]) == (None, {}, "")


def test_an_empty_pass_list_is_still_a_list() -> None:
    # kube-scheduler reads a missing NodeNames as "no answer" and would fall back to Nodes
    result = filter_result(ExtenderArgs(pod("p"), ["n1"]), [], {"n1": "full"})
    assert result["NodeNames"] == []


def test_filter_result_answers_a_node_list_with_a_node_list() -> None:
    nodes = [{"metadata": {"name": "n1"}}, {"metadata": {"name": "n2"}}]
    result = filter_result(ExtenderArgs(pod("p"), ["n1", "n2"], nodes), ["n2"], {"n1": "full"})
    assert result["Nodes"]["items"] == [{"metadata": {"name": "n2"}}]
    assert result["NodeNames"] is None


def test_host_priorities_use_host_and_score_within_bounds() -> None:
    assert host_priorities([("n1", 3), ("n2", 42), ("n3", -1)]) == [
        {"Host": "n1", "Score": 3},
        {"Host": "n2", "Score": 10},
        {"Host": "n3", "Score": 0},
    ]


ODD_NAMES = ['we"ird\\host\u00e9', "tab\there", "n1"]


@pytest.mark.parametrize("names", [["n1", "node-2.example.com", "n3"], ODD_NAMES])
def test_parse_args_says_whether_names_can_be_joined_unescaped(names: list[str]) -> None:
    args = parse_args(body(Pod=pod("p"), NodeNames=names))
    assert args.plain_names is (names is not ODD_NAMES)
    assert args.node_names == names


@pytest.mark.parametrize("names", [["n1", "node-2.example.com", "n3", "n4"], [*ODD_NAMES, "n4"]])
def test_filter_results_encode_like_the_generic_encoder(names: list[str]) -> None:
    args = parse_args(body(Pod=pod("p"), NodeNames=names))
    failed = {names[1]: 'no VG has room for PVC "a" (1 GiB)', names[3]: "full"}
    passed = [names[0], names[2]]
    for ok, unresolvable, error in ((passed, failed, ""), ([], failed, "boom"), (passed, {}, "")):
        encoded = encode_filter_result(args, ok, unresolvable, error)
        assert json.loads(encoded) == json.loads(encode(filter_result(args, ok, unresolvable, error)))


def test_a_node_list_request_gets_a_node_list_answer_from_the_fast_encoder() -> None:
    nodes = {"items": [{"metadata": {"name": "n1"}}, {"metadata": {"name": "n2"}}]}
    args = parse_args(body(Pod=pod("p"), Nodes=nodes))
    answer = json.loads(encode_filter_result(args, ["n2"], {"n1": "full"}))
    assert answer["Nodes"]["items"] == [{"metadata": {"name": "n2"}}]
    assert answer["NodeNames"] is None


@pytest.mark.parametrize("plain", [True, False])
def test_ranks_encode_as_a_host_priority_list_relative_to_the_lowest_score(plain: bool) -> None:
    names = ["n1", "n2", "n3", "n4", "n5"] if plain else [*ODD_NAMES, "n4", "n5"]
    ranks: list[list[str]] = [[] for _ in range(11)]
    ranks[2], ranks[3], ranks[10] = [names[0]], [names[1], names[2]], [names[3], names[4]]
    # names[0] has the lowest score: left out (it gets 0), every other lowered by 2
    expected = [(names[1], 1), (names[2], 1), (names[3], 8), (names[4], 8)]
    assert json.loads(encode_ranks(ranks, plain)) == json.loads(encode(host_priorities(expected)))
    assert json.loads(encode_ranks([[] for _ in range(11)], plain)) == []


@pytest.mark.parametrize("score", [0, 4, 10])
def test_nodes_that_all_score_alike_encode_as_an_empty_list(score: int) -> None:
    ranks: list[list[str]] = [[] for _ in range(11)]
    ranks[score] = ["n1", "n2", "n3"]
    assert encode_ranks(ranks, True) == b"[]"


def test_relative_scores_leave_every_total_difference_as_it_was() -> None:
    """kube-scheduler adds score x weight to each node's total: the differences decide, not the level."""
    rng = random.Random(7)  # noqa: S311 (test data)
    for _ in range(200):
        absolute = {f"n{i}": rng.randint(0, 10) for i in range(rng.randint(1, 12))}
        ranks: list[list[str]] = [[] for _ in range(11)]
        for node, score in absolute.items():
            ranks[score].append(node)
        relative = {entry["Host"]: entry["Score"] for entry in json.loads(encode_ranks(ranks, True))}
        assert set(relative) <= set(absolute) and all(1 <= s <= 10 for s in relative.values())
        lowest = min(absolute.values())
        assert {node: relative.get(node, 0) for node in absolute} == {n: s - lowest for n, s in absolute.items()}


def test_error_result_has_every_key() -> None:
    assert set(error_result("boom")) == FILTER_RESULT_KEYS
    assert error_result("boom")["Error"] == "boom"


# NodeNames arrays remembered by their bytes ----------------------------------------------------------


def go_body(the_pod: object, names: object, **extra: object) -> bytes:
    """ExtenderArgs as kube-scheduler's Go encoder writes them: compact, NodeNames last."""
    return json.dumps({"Pod": the_pod, "Nodes": None, **extra, "NodeNames": names}, separators=(",", ":")).encode()


NAMES = [f"node-{i}" for i in range(50)]


def outcome(raw: bytes, names: RequestCache | None) -> ExtenderArgs | str:
    try:
        return parse_args(raw, names)
    except ProtocolError as error:
        return f"ProtocolError: {error}"


def test_a_remembered_array_is_not_decoded_again() -> None:
    names = RequestCache()
    first = parse_args(go_body(pod("p"), NAMES), names)
    second = parse_args(go_body(pod("q"), NAMES), names)
    assert second.node_names is first.node_names  # the same list: later comparisons are by pointer
    assert second == ExtenderArgs(pod("q"), NAMES, None, plain_names=True)


def test_filters_answer_is_remembered_for_prioritize() -> None:
    names = RequestCache()
    args = parse_args(go_body(pod("p"), NAMES), names)
    passed = NAMES[::2]
    answer = json.loads(encode_filter_result(args, passed, {n: "full" for n in NAMES[1::2]}, names=names))
    assert parse_args(go_body(pod("p"), answer["NodeNames"]), names).node_names is passed


def test_prioritize_gets_the_pod_filter_decoded_when_its_bytes_are_the_same() -> None:
    names = RequestCache()
    parse_args(go_body(pod("warm"), NAMES), names)
    filtered = parse_args(go_body(pod("p"), NAMES), names)
    passed = NAMES[1:]
    json.loads(encode_filter_result(filtered, passed, {NAMES[0]: "full"}, names=names))
    prioritized = parse_args(go_body(pod("p"), passed), names)
    assert prioritized.pod is filtered.pod and prioritized.node_names is passed
    other = parse_args(go_body(pod("q"), passed), names)  # another pod: decoded, and equal to a whole decode
    assert other.pod is not filtered.pod and other == parse_args(go_body(pod("q"), passed))
    again = parse_args(go_body(pod("p"), NAMES), names)  # the cache holds the last pod only
    assert again.pod is not filtered.pod and again.pod == filtered.pod


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps({"Pod": pod("p"), "NodeNames": NAMES}).encode(),  # not compact: decoded whole each time
        go_body(pod("p"), [*NAMES[:3], 'we"ird']),  # names that need escaping are never remembered
        go_body(pod("p"), [*NAMES[:3], "caf\u00e9"]),
        json.dumps({"Pod": pod("p"), "Nodes": {"items": [{"metadata": {"name": "n"}}]}}).encode(),
    ],
)
def test_only_compact_arrays_of_plain_names_are_remembered(raw: bytes) -> None:
    names = RequestCache()
    first, second = parse_args(raw, names), parse_args(raw, names)
    assert first == second == parse_args(raw)
    assert second.node_names is not first.node_names


ARRAY = json.dumps(NAMES, separators=(",", ":"))
PLAIN_POD = json.dumps(pod("p"), separators=(",", ":"))


@pytest.mark.parametrize(
    "text",
    [
        f'{{"Pod":{PLAIN_POD},"Nodes":null,"NodeNames":{ARRAY}}}',
        f' {{ "Pod" : {PLAIN_POD} ,\n "NodeNames" : {ARRAY} }}\n',
        f'{{"NodeNames":["elsewhere"],"Pod":{PLAIN_POD},"NodeNames":{ARRAY}}}',  # the last one wins
        f'{{"nodenames":["elsewhere"],"Pod":{PLAIN_POD},"NodeNames":{ARRAY}}}',  # the exact key wins
        f'{{"Pod":{PLAIN_POD},"NodeNames":{ARRAY},"NodeNames":["n1"]}}',
        f'{{"Pod":{PLAIN_POD},"NodeNames":{ARRAY},"Pod":{{}}}}',  # not last: decoded whole
        f'{{"NodeNames":{ARRAY}}}',  # no Pod
        f'{{,"NodeNames":{ARRAY}}}',  # not JSON, though "{{}}" is
        f'{{"Pod":{PLAIN_POD},,"NodeNames":{ARRAY}}}',
        f'{{"Pod":{PLAIN_POD}}}"NodeNames":{ARRAY}}}',  # no comma: what would stand in for it is the pod's }
        f'{{"Pod":{PLAIN_POD[:-1]},"NodeNames":{ARRAY}}}',  # the pod is not closed: NodeNames is inside it
        f'{{"Pod":{PLAIN_POD},"x":"\\"NodeNames\\":{ARRAY}}}"}}',  # in a string
        f'{{"Pod":{PLAIN_POD},"x":{{"NodeNames":{ARRAY}}}}}',  # nested
        f'{{"Pod":{PLAIN_POD},"x":["NodeNames",{ARRAY}]}}',
        f'{{"Pod":{PLAIN_POD},"NodeNames":{ARRAY}}}}}',
        f'{{"Pod":{PLAIN_POD},"NodeNames":{ARRAY}',
        f'{{"Pod":"not a pod","NodeNames":{ARRAY}}}',
        f'[{{"Pod":{PLAIN_POD}}},"NodeNames":{ARRAY}}}',
    ],
)
def test_a_request_ending_in_a_remembered_array_reads_as_when_decoded_whole(text: str) -> None:
    names = RequestCache()
    parse_args(go_body(pod("warm"), NAMES), names)
    assert names.get(ARRAY.encode()) is not None
    raw = text.encode()
    assert outcome(raw, names) == outcome(raw, None)


def test_the_cache_keeps_the_last_few_arrays() -> None:
    names = RequestCache(size=2)
    arrays = [NAMES[:10], NAMES[10:20], NAMES[20:30]]
    for array in arrays:
        parse_args(go_body(pod("p"), array), names)
    raws = [json.dumps(array, separators=(",", ":")).encode() for array in arrays]
    assert [names.get(raw) for raw in raws] == [None, arrays[1], arrays[2]]


@pytest.mark.parametrize("code", [*range(0x80), 0xE9, 0x2028, 0x1F600])
def test_names_are_plain_exactly_when_json_leaves_them_as_they_are(code: int) -> None:
    name = f"n{chr(code)}1"
    assert parse_args(body(Pod=pod("p"), NodeNames=[name])).plain_names is (json.dumps(name) == f'"{name}"')
