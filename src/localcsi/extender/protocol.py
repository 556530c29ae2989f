"""The kube-scheduler extender wire format (k8s.io/kube-scheduler/extender/v1).

The Go types carry no JSON tags, so their keys are the Go field names: ``Pod``, ``Nodes``,
``NodeNames`` in ExtenderArgs; ``Nodes``, ``NodeNames``, ``FailedNodes``,
``FailedAndUnresolvableNodes``, ``Error`` in ExtenderFilterResult; ``Host``, ``Score`` in each
HostPriority. Go's decoder matches keys case-insensitively, and so does ``parse_args``. The pod and
nodes inside are ordinary v1 objects with camelCase keys.

With ``nodeCacheCapable: true`` the scheduler sends NodeNames and reads NodeNames back; a filter
answer without NodeNames would leave it no node at all, so the answer always carries the key.

kube-scheduler sends nearly the same NodeNames request after request: filter gets the feasible nodes,
prioritize the nodes that passed filter. ``RequestCache`` remembers the last few arrays by their
exact bytes, so a request whose array is one of them has only its Pod decoded (see ``parse_args``),
and prioritize's Pod, sent in the same bytes as the filter request before it, not even that.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_SCORE = 10  # MaxExtenderPriority
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii
_SCORE_SUFFIXES = {score: f',"Score":{score}}}' for score in range(MAX_SCORE + 1)}
_NAMES_KEY = b'"NodeNames"'
_JSON_SPACE = b" \t\r\n"
# Printable ASCII but the quote and the backslash: what goes into a JSON string unescaped.
_PLAIN_BYTES = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')
# A \uD800-\uDFFF escape: json.loads makes a lone one a str that cannot be encoded (Go's decoder
# would put U+FFFD in its place); the apiserver admits no such name, so a body with one is refused.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
NAMES_CACHE_SIZE = 4  # filter's names and its answer (prioritize's), and room for a second scheduler


class ProtocolError(ValueError):
    """The request is not a valid ExtenderArgs: answer 400 with this message."""


class RequestCache:
    """The last few NodeNames arrays, by their exact bytes, with the names they decode to; and the
    last request's Pod, by the exact bytes of everything before its NodeNames.

    Only compact arrays of plain names are kept (``_array(names)``, which is how Go's encoder writes
    node names), so the bytes of an entry always decode to its names. kube-scheduler asks prioritize
    about the pod it has just filtered, with the same bytes before NodeNames, so that pod is decoded
    once (about 0.03 ms a decode at 100 nodes, in a replay of a bench_scheduler round). The lists and
    the pod are shared by every request that hits: nobody may change them. Safe across server threads:
    each entry is one tuple, replaced whole.
    """

    def __init__(self, size: int = NAMES_CACHE_SIZE) -> None:
        self._size = size
        self._entries: tuple[tuple[bytes, list[str]], ...] = ()
        self.last_pod: tuple[bytes, dict[str, Any]] | None = None  # (the bytes before NodeNames, the Pod)

    def get(self, raw: bytes) -> list[str] | None:
        for known, names in self._entries:
            if known == raw:
                return names
        return None

    def put(self, raw: bytes, names: list[str]) -> None:
        """Remember ``names``, whose compact encoding is ``raw`` (the caller has checked that)."""
        rest = tuple(entry for entry in self._entries if entry[0] != raw)
        self._entries = ((raw, names), *rest)[: self._size]


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


def parse_args(body: bytes, names: RequestCache | None = None) -> ExtenderArgs:
    """The request, or ProtocolError. With ``names``, a request that ends with a NodeNames array the
    cache holds (``{...,"NodeNames":[...]}``) has only the rest decoded: at 5000 nodes that skips most of
    the parse (``_cached_args``); any other request is decoded whole, and its array remembered."""
    split = _split_names(body) if names is not None and not _SURROGATE_ESCAPE.search(body) else None
    if names is None or split is None:
        return _decode(body)
    head, array = split
    cached = _cached_args(head, names.get(array), names)
    if cached is not None:
        return cached
    args = _decode(body)
    # Kept only when the array's bytes are its names' own compact encoding: they decode to these names.
    if args.nodes is None and args.plain_names and array == _array(args.node_names):
        names.put(array, args.node_names)
    return args


def _decode(body: bytes) -> ExtenderArgs:
    try:
        decoded = json.loads(body)
    except RecursionError:
        raise ProtocolError("request body is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
        raise ProtocolError(f"request body is not JSON: {error}") from None
    if not isinstance(decoded, dict):
        raise ProtocolError("request body must be a JSON object (ExtenderArgs)")
    if _SURROGATE_ESCAPE.search(body):
        try:
            json.dumps(decoded, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise ProtocolError("request body holds a lone UTF-16 surrogate (\\uD800-\\uDFFF)") from None
        except RecursionError:
            raise ProtocolError("request body is nested too deeply") from None
    pod = _pod(_field(decoded, "Pod"))
    node_names, nodes = _node_names(_field(decoded, "NodeNames"), _field(decoded, "Nodes"))
    return ExtenderArgs(pod, node_names, nodes, _plain("".join(node_names)))


def _split_names(body: bytes) -> tuple[bytes, bytes] | None:
    """``(head, array)`` when the body is ``head`` + ``"NodeNames":`` + ``array`` + ``}``, ignoring
    JSON whitespace; nothing about either part is checked here."""
    at = body.rfind(_NAMES_KEY)
    if at < 0:
        return None
    rest = body[at + len(_NAMES_KEY) :].lstrip(_JSON_SPACE)
    if not rest.startswith(b":"):
        return None
    array = rest[1:].strip(_JSON_SPACE)
    if not array.endswith(b"}"):
        return None
    return body[:at], array[:-1].rstrip(_JSON_SPACE)


def _cached_args(head: bytes, node_names: list[str] | None, cache: RequestCache) -> ExtenderArgs | None:
    """The request from its head and the cached names of its NodeNames array; None to decode it whole.

    If ``head`` less its final comma, closed with ``}``, is a JSON object with members, then the comma
    was at its top level, and the whole body is that object with NodeNames appended: NodeNames is then
    its last key, and wins over any earlier one, as in a whole decode. Anything else (no comma, a head
    that does not decode) is left to the whole decode, which says what is wrong with it.
    """
    if node_names is None:
        return None
    last_pod = cache.last_pod
    if last_pod is not None and last_pod[0] == head:
        return ExtenderArgs(last_pod[1], node_names, None, plain_names=True)
    raw = head.rstrip(_JSON_SPACE)
    if not raw.endswith(b","):
        return None
    try:
        decoded = json.loads(raw[:-1] + b"}")
    except (ValueError, RecursionError):
        return None
    if not isinstance(decoded, dict) or not decoded:
        return None
    pod = _pod(_field(decoded, "Pod"))
    cache.last_pod = (head, pod)
    return ExtenderArgs(pod, node_names, None, plain_names=True)


def _array(names: Sequence[str]) -> bytes:
    """The compact JSON array of plain ``names``."""
    return ('["' + '","'.join(names) + '"]').encode() if names else b"[]"


def _plain(text: str) -> bool:
    """Whether ``text`` goes into a JSON string as it is: printable ASCII without quote or backslash
    (json.dumps would escape anything else). Deleting the plain bytes and finding nothing left is
    several times faster than ``str.isprintable`` (0.02 against 0.11 ms for 5000 names)."""
    return text.isascii() and not text.encode("ascii").translate(None, _PLAIN_BYTES)


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
    args: ExtenderArgs,
    passed: list[str],
    unresolvable: Mapping[str, str],
    error: str = "",
    names: RequestCache | None = None,
) -> bytes:
    """``encode(filter_result(...))``; when every name is plain, NodeNames is joined rather than
    encoded name by name (5000 of them cost a third of a millisecond), and remembered in ``names``:
    kube-scheduler sends it back to prioritize as it is."""
    if args.nodes is not None or not args.plain_names:
        return encode(filter_result(args, passed, unresolvable, error))
    array = _array(passed)
    if names is not None:
        names.put(array, passed)
    failed = encode(dict(unresolvable)) if unresolvable else b"{}"  # json.dumps makes an encoder per call
    return b"".join(
        (
            b'{"Nodes":null,"NodeNames":',
            array,
            b',"FailedNodes":{},"FailedAndUnresolvableNodes":',
            failed,
            b',"Error":',
            _quote(error).encode(),
            b"}",
        )
    )


def encode_ranks(ranks: Sequence[Sequence[str]], plain_names: bool = False) -> bytes:
    """A HostPriorityList from ``ranks[score]``, the hosts with each score (0..MaxExtenderPriority),
    relative to the lowest score among them: the hosts at the lowest score are left out, and the others
    get their score less the lowest (joined, without a dict or a string per host, when names are plain).

    kube-scheduler asks prioritize about every node still in the running, adds score x weight to each
    node's total (a node the answer leaves out gets nothing) and takes the highest total, so one score
    taken off all of them changes no choice. Where every node scores alike the answer is ``[]``, which
    kube-scheduler neither decodes nor adds up entry by entry (docs/extender.md, "Prioritize")."""
    lowest = next((score for score, hosts in enumerate(ranks) if hosts), 0)
    parts: list[str] = []
    for score, hosts in enumerate(ranks):
        if not hosts or score == lowest:
            continue
        suffix = _SCORE_SUFFIXES[score - lowest]
        if plain_names:
            parts.append('{"Host":"' + f'"{suffix},{{"Host":"'.join(hosts) + '"' + suffix)
        else:
            parts.append(",".join('{"Host":' + _quote(host) + suffix for host in hosts))
    return ("[" + ",".join(parts) + "]").encode()


def encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
