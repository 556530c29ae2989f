"""NodeLocalStorageInitConfig -> the NodeLocalStorage spec of one node (the merge rule), and label selectors.

The merge rule (documented with examples in docs/storage-controller.md):

1. Start from a copy of ``spec.globalConfig``.
2. For each ``spec.nodesConfig`` entry, in list order, whose ``selector`` matches the node's labels,
   every section the entry sets replaces the same section of the result wholesale. The sections are
   ``listConfig.devices``, ``listConfig.vgs``, ``listConfig.mountPoints``, ``resourceToBeInited.vgs``,
   ``resourceToBeInited.mountpoints``, and any other top-level key (``reservedSpace``, ...). A section
   the entry leaves out is inherited from what came before.
3. ``nodeName`` is the node's name.

An entry that sets every section is the seeds' "use the specific node config". open-local replaces
all of ``listConfig`` and ``resourceToBeInited`` at once, so an entry that only sets
``resourceToBeInited`` there silently drops the global ``listConfig``; here it inherits it.

Selectors follow Kubernetes' metav1.LabelSelector: ``matchLabels`` and ``matchExpressions``
(In, NotIn, Exists, DoesNotExist) are ANDed; an empty selector matches every node; a missing one
matches none. An invalid selector matches nothing and is reported, so one bad entry does not stop
the others (open-local fails the whole init config instead).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

NESTED_SECTIONS: Final = ("listConfig", "resourceToBeInited")
SELECTOR_KEY: Final = "selector"
OPERATORS: Final = ("In", "NotIn", "Exists", "DoesNotExist")

# k8s.io/apimachinery/pkg/util/validation: qualified names and label values.
_NAME_PART: Final = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS1123_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
MAX_NAME_PART: Final = 63
MAX_PREFIX: Final = 253


class InvalidSelectorError(ValueError):
    """A label selector that Kubernetes would refuse; the message says which part and why."""


@dataclass(frozen=True)
class NodeSpec:
    """The merged NodeLocalStorage spec of one node and the nodesConfig entries applied, in order."""

    spec: dict[str, object]
    applied: tuple[int, ...]


def _label_key_problem(key: object) -> str | None:
    if not isinstance(key, str) or not key:
        return f"label key {key!r} must be a non-empty string"
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > MAX_PREFIX or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return f"label key {key!r}: the prefix must be a DNS subdomain of at most {MAX_PREFIX} characters"
    if len(name) > MAX_NAME_PART or not _NAME_PART.fullmatch(name):
        return (
            f"label key {key!r}: the name must be 1-{MAX_NAME_PART} characters of [A-Za-z0-9_.-], "
            "starting and ending with a letter or digit"
        )
    return None


def _label_value_problem(key: str, value: object) -> str | None:
    if not isinstance(value, str):
        return f"label {key!r}: value {value!r} must be a string"
    if value and (len(value) > MAX_NAME_PART or not _NAME_PART.fullmatch(value)):
        return (
            f"label {key!r}: value {value!r} must be empty or 1-{MAX_NAME_PART} characters of [A-Za-z0-9_.-], "
            "starting and ending with a letter or digit"
        )
    return None


def _expression_problems(expression: object) -> Iterator[str]:
    if not isinstance(expression, Mapping):
        yield f"matchExpressions entry {expression!r} must be an object"
        return
    key = expression.get("key")
    operator = expression.get("operator")
    values = expression.get("values") or []
    problem = _label_key_problem(key)
    if problem is not None:
        yield problem
        return
    if operator not in OPERATORS:
        yield f"label {key!r}: operator {operator!r} is not one of {', '.join(OPERATORS)}"
    elif not isinstance(values, list):
        yield f"label {key!r}: values must be a list"
    elif operator in ("In", "NotIn") and not values:
        yield f"label {key!r}: operator {operator} needs at least one value"
    elif operator in ("Exists", "DoesNotExist") and values:
        yield f"label {key!r}: operator {operator} takes no values"
    else:
        yield from filter(None, (_label_value_problem(str(key), value) for value in values))


def _selector_problems(selector: Mapping[str, object]) -> Iterator[str]:
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        yield "matchLabels must be an object of label key to value"
    else:
        for key, value in match_labels.items():
            yield from filter(None, (_label_key_problem(key) or _label_value_problem(key, value),))
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        yield "matchExpressions must be a list"
    else:
        for expression in expressions:
            yield from _expression_problems(expression)


def selector_problem(selector: object) -> str | None:
    """Why Kubernetes would refuse ``selector`` (a metav1.LabelSelector as a dict), or None if valid."""
    if selector is None:
        return None
    if not isinstance(selector, Mapping):
        return f"selector must be an object, not {type(selector).__name__}"
    return next(_selector_problems(selector), None)


def selector_matches(selector: Mapping[str, object] | None, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy ``selector``; raises InvalidSelectorError if it is invalid.

    A missing (None) selector matches nothing and an empty one matches everything, as in Kubernetes.
    """
    problem = selector_problem(selector)
    if problem is not None:
        raise InvalidSelectorError(problem)
    if selector is None:
        return False
    match_labels = selector.get("matchLabels") or {}
    assert isinstance(match_labels, Mapping)
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    expressions = selector.get("matchExpressions") or []
    assert isinstance(expressions, list)
    return all(_expression_matches(expression, labels) for expression in expressions)


def _expression_matches(expression: Mapping[str, object], labels: Mapping[str, str]) -> bool:
    key = str(expression["key"])
    operator = expression["operator"]
    values = expression.get("values") or []
    assert isinstance(values, list)
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if operator == "In":
        return key in labels and labels[key] in values
    return key not in labels or labels[key] not in values  # NotIn


def invalid_entries(init_spec: Mapping[str, object]) -> dict[int, str]:
    """nodesConfig index -> why its selector is invalid (or why the entry is not an object)."""
    problems: dict[int, str] = {}
    for index, entry in enumerate(_nodes_config(init_spec)):
        if not isinstance(entry, Mapping):
            problems[index] = "nodesConfig entry must be an object"
            continue
        problem = selector_problem(entry.get(SELECTOR_KEY))
        if problem is not None:
            problems[index] = problem
    return problems


def _nodes_config(init_spec: Mapping[str, object]) -> Sequence[object]:
    entries = init_spec.get("nodesConfig") or []
    return entries if isinstance(entries, list) else []


def _overlay(base: dict[str, object], config: Mapping[str, object]) -> None:
    for key, value in config.items():
        if key == SELECTOR_KEY or value is None:
            continue
        if key in NESTED_SECTIONS and isinstance(value, Mapping):
            current = base.get(key)
            merged = dict(current) if isinstance(current, Mapping) else {}
            merged.update({sub: copy.deepcopy(sub_value) for sub, sub_value in value.items() if sub_value is not None})
            base[key] = merged
        else:
            base[key] = copy.deepcopy(value)


def node_spec(init_spec: Mapping[str, object], node_name: str, labels: Mapping[str, str]) -> NodeSpec:
    """The NodeLocalStorage spec of node ``node_name`` with ``labels`` under the merge rule above."""
    spec: dict[str, object] = {}
    global_config = init_spec.get("globalConfig")
    if isinstance(global_config, Mapping):
        _overlay(spec, global_config)
    applied: list[int] = []
    for index, entry in enumerate(_nodes_config(init_spec)):
        if not isinstance(entry, Mapping):
            continue
        selector = entry.get(SELECTOR_KEY)
        if selector_problem(selector) is not None:
            continue
        if selector_matches(selector if isinstance(selector, Mapping) else None, labels):
            _overlay(spec, entry)
            applied.append(index)
    spec["nodeName"] = node_name
    return NodeSpec(spec=spec, applied=tuple(applied))


def contains(stored: object, desired: object) -> bool:
    """Whether ``stored`` holds everything ``desired`` says: equal, except that objects in ``stored`` may
    carry extra keys (defaults the apiserver filled in)."""
    if isinstance(desired, Mapping):
        return isinstance(stored, Mapping) and all(
            key in stored and contains(stored[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(desired)
            and all(contains(s, d) for s, d in zip(stored, desired, strict=True))
        )
    return stored == desired


def spec_digest(spec: Mapping[str, object]) -> str:
    """A short stable digest of a spec, for recording which desired spec an object was written from."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
