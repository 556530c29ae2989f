"""ListVolumes / ListSnapshots paging.

Entries are sorted by a stable key (the id). A token is ``lc1.`` + url-safe base64 of the last key
returned, and the next page starts after that key, so entries created or deleted between calls cause
neither duplicates nor gaps among the others, even when the token's own entry was deleted.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from localcsi.core.errors import Aborted, InvalidArgument

_TOKEN_PREFIX = "lc1."  # noqa: S105 - a format marker, not a secret
T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    entries: tuple[T, ...]
    next_token: str  # "" when this is the last page


def encode_token(key: str) -> str:
    return _TOKEN_PREFIX + base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii")


def decode_token(token: str) -> str:
    invalid = Aborted(f"starting_token {token[:80]!r} is not valid; start again with an empty token")
    if not token.startswith(_TOKEN_PREFIX):
        raise invalid
    try:
        key = base64.urlsafe_b64decode(token[len(_TOKEN_PREFIX) :].encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise invalid from None
    # b64decode skips characters outside its alphabet; only the exact token we issued is accepted.
    if not key or encode_token(key) != token:
        raise invalid
    return key


def paginate(items: Iterable[T], key: Callable[[T], str], max_entries: int, starting_token: str) -> Page[T]:
    """One page of ``items`` ordered by ``key``; ``max_entries`` 0 means no limit."""
    if max_entries < 0:
        raise InvalidArgument(f"max_entries must not be negative, got {max_entries}")
    ordered = sorted(items, key=key)
    if starting_token:
        after = decode_token(starting_token)
        ordered = [item for item in ordered if key(item) > after]
    if not max_entries or len(ordered) <= max_entries:
        return Page(tuple(ordered), "")
    entries = tuple(ordered[:max_entries])
    return Page(entries, encode_token(key(entries[-1])))
