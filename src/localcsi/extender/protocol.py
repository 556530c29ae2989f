"""The kube-scheduler extender wire format (k8s.io/kube-scheduler/extender/v1).

The Go types carry no JSON tags, so their keys are the Go field names: ``Pod``, ``Nodes``,
``NodeNames`` in ExtenderArgs; ``Nodes``, ``NodeNames``, ``FailedNodes``,
``FailedAndUnresolvableNodes``, ``Error`` in ExtenderFilterResult; ``Host``, ``Score`` in each
HostPriority. Go's decoder matches keys case-insensitively, and so does ``parse_args``. The pod and
nodes inside are ordinary v1 objects with camelCase keys.

With ``nodeCacheCapable: true`` the scheduler sends NodeNames and reads NodeNames back; a filter
answer without NodeNames would leave it no node at all, so the answer always carries the key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_SCORE = 10  # MaxExtenderPriority
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii
_SCORE_SUFFIXES = {score: f',"Score":{score}}}' for score in range(MAX_SCORE + 1)}


class ProtocolError(ValueError):
    """The request is not a valid ExtenderArgs: answer 400 with this message."""


@dataclass(frozen=True)
class ExtenderArgs:
    pod: dict[str, Any]
    node_names: list[str]
    nodes: list[dict[str, Any]] | None = None  # set when the scheduler sent a NodeList (nodeCacheCapable false)
    plain_names: bool = False  # no name needs escaping in JSON: answers are joined, not encoded


def _field(body: Mapping[str, Any], name: str) -> Any:
    if name in body:
        return body[name]
    lowered = name.lower()
    return next((value for key, value in body.items() if key.lower() == lowered), None)


def _pod(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError("Pod is required and must be a v1 Pod object")
    metadata = value.get("metadata")
    if not isinstance(metadata, dict):
        raise ProtocolError("Pod.metadata is required")
    for key in ("name", "uid"):
        if not isinstance(metadata.get(key), str) or not metadata[key]:
            raise ProtocolError(f"Pod.metadata.{key} is required and must be a non-empty string")
    if not isinstance(metadata.get("namespace", ""), str):
        raise ProtocolError("Pod.metadata.namespace must be a string")
    spec = value.get("spec", {})
    if not isinstance(spec, dict):
        raise ProtocolError("Pod.spec must be an object")
    volumes = spec.get("volumes") or []
    if not isinstance(volumes, list) or not all(isinstance(v, dict) for v in volumes):
        raise ProtocolError("Pod.spec.volumes must be a list of objects")
    return value


def _node_names(names: Any, nodes: Any) -> tuple[list[str], list[dict[str, Any]] | None]:
    if names is not None:
        try:
            if not isinstance(names, list):
                raise TypeError
            "".join(names)  # the fastest check that every one is a string: 5000 names arrive per request
        except TypeError:
            raise ProtocolError("NodeNames must be a list of strings") from None
        return names, None
    if nodes is None:
        raise ProtocolError("ExtenderArgs needs NodeNames (nodeCacheCapable: true) or Nodes")
    items = nodes.get("items") if isinstance(nodes, dict) else None
    if not isinstance(items, list) or not all(isinstance(n, dict) for n in items):
        raise ProtocolError("Nodes must be a v1 NodeList with an items list")
    named = [n.get("metadata", {}).get("name") if isinstance(n.get("metadata"), dict) else None for n in items]
    if not all(isinstance(n, str) and n for n in named):
        raise ProtocolError("every node in Nodes.items needs metadata.name")
    return [str(n) for n in named], items


def parse_args(body: bytes) -> ExtenderArgs:
    try:
        decoded = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"request body is not JSON: {error}") from None
    if not isinstance(decoded, dict):
        raise ProtocolError("request body must be a JSON object (ExtenderArgs)")
    pod = _pod(_field(decoded, "Pod"))
    names, nodes = _node_names(_field(decoded, "NodeNames"), _field(decoded, "Nodes"))
    return ExtenderArgs(pod, names, nodes, _plain("".join(names)))


def _plain(text: str) -> bool:
    """Whether ``text`` goes into a JSON string as it is: printable ASCII without quote or backslash
    (json.dumps would escape anything else)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def filter_result(
    args: ExtenderArgs, passed: Sequence[str], unresolvable: Mapping[str, str], error: str = ""
) -> dict[str, Any]:
    """ExtenderFilterResult, answering in the form the request came in (NodeNames or Nodes)."""
    result: dict[str, Any] = {
        "Nodes": None,
        "NodeNames": list(passed),
        "FailedNodes": {},
        "FailedAndUnresolvableNodes": dict(unresolvable),
        "Error": error,
    }
    if args.nodes is not None:
        keep = set(passed)
        items = [n for n in args.nodes if n["metadata"]["name"] in keep]
        result["Nodes"] = {"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": items}
        result["NodeNames"] = None
    return result


def error_result(message: str) -> dict[str, Any]:
    return {"Nodes": None, "NodeNames": None, "FailedNodes": {}, "FailedAndUnresolvableNodes": {}, "Error": message}


def host_priorities(scores: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    """HostPriorityList; scores are clamped to 0..MaxExtenderPriority."""
    return [{"Host": host, "Score": max(0, min(MAX_SCORE, int(value)))} for host, value in scores]


def encode_filter_result(
    args: ExtenderArgs, passed: Sequence[str], unresolvable: Mapping[str, str], error: str = ""
) -> bytes:
    """``encode(filter_result(...))``; when every name is plain, NodeNames is joined rather than
    encoded name by name (5000 of them cost a third of a millisecond)."""
    if args.nodes is not None or not args.plain_names:
        return encode(filter_result(args, passed, unresolvable, error))
    names = '"' + '","'.join(passed) + '"' if passed else ""
    failed = encode(dict(unresolvable)).decode()
    return (
        f'{{"Nodes":null,"NodeNames":[{names}],"FailedNodes":{{}},'
        f'"FailedAndUnresolvableNodes":{failed},"Error":{_quote(error)}}}'
    ).encode()


def encode_ranks(ranks: Sequence[Sequence[str]], plain_names: bool = False) -> bytes:
    """A HostPriorityList from ``ranks[score]``, the hosts with each score (0..MaxExtenderPriority):
    ``encode(host_priorities(...))`` without a dict or a string per host when names are plain."""
    parts: list[str] = []
    for score, hosts in enumerate(ranks):
        if not hosts:
            continue
        suffix = _SCORE_SUFFIXES[score]
        if plain_names:
            parts.append('{"Host":"' + f'"{suffix},{{"Host":"'.join(hosts) + '"' + suffix)
        else:
            parts.append(",".join('{"Host":' + _quote(host) + suffix for host in hosts))
    return ("[" + ",".join(parts) + "]").encode()


def encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
