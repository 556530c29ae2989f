"""LV tags: the truth about a volume, stored in LVM itself.

lvm2 tags allow only ``[A-Za-z0-9_+.-/=!:&#]`` and up to 1024 characters, so the free-form CSI name
is stored as unpadded url-safe base64 (alphabet ``[A-Za-z0-9_-]``). Layout::

    localcsi.io                        owner marker; `lvs @localcsi.io` lists only our LVs
    localcsi.io/kind=volume|snapshot
    localcsi.io/name=<base64url(utf-8 CSI name)>
    localcsi.io/size=<bytes>           volume: required_bytes asked for; snapshot: source size
    localcsi.io/source=volume:<id>     or snapshot:<id> -- the content source, if any
    localcsi.io/fstype=ext4|xfs        optional hint
    localcsi.io/access=mount|block     optional hint
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from localcsi.core.errors import Internal, InvalidArgument
from localcsi.core.names import validate_csi_name

OWNER_TAG = "localcsi.io"
_PREFIX = OWNER_TAG + "/"
MAX_TAG_LENGTH = 1024
_TAG_CHARS = re.compile(r"[A-Za-z0-9_+.\-/=!:&#]+")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class LvKind(StrEnum):
    VOLUME = "volume"
    SNAPSHOT = "snapshot"


class SourceKind(StrEnum):
    VOLUME = "volume"
    SNAPSHOT = "snapshot"


@dataclass(frozen=True)
class Source:
    """Where a volume's content came from (a snapshot or a volume), or a snapshot's origin volume."""

    kind: SourceKind
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class LvMetadata:
    kind: LvKind
    name: str
    size_bytes: int
    source: Source | None = None
    fs_type: str | None = None
    access_type: str | None = None


def validate_tag(tag: str) -> str:
    if not tag or len(tag) > MAX_TAG_LENGTH or tag.startswith("-") or not _TAG_CHARS.fullmatch(tag):
        raise InvalidArgument(
            f"LV tag {tag[:60]!r} is not valid for lvm2: use 1-{MAX_TAG_LENGTH} characters from "
            "[A-Za-z0-9_+.-/=!:&#], not starting with '-'"
        )
    return tag


def encode_name(name: str) -> str:
    """The CSI name as unpadded url-safe base64 of its UTF-8 bytes."""
    validate_csi_name(name)
    return base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii").rstrip("=")


def decode_name(encoded: str) -> str:
    if not _B64URL.fullmatch(encoded) or len(encoded) % 4 == 1:
        raise ValueError(f"{encoded!r} is not unpadded url-safe base64")
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        return base64.urlsafe_b64decode(padded).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"{encoded!r} does not decode to a UTF-8 name: {exc}") from None


def encode_tags(meta: LvMetadata) -> tuple[str, ...]:
    """The tags for an LV; each checked against lvm2's tag rules."""
    if meta.size_bytes < 0:
        raise InvalidArgument(f"size must not be negative, got {meta.size_bytes}")
    tags = [
        OWNER_TAG,
        f"{_PREFIX}kind={meta.kind}",
        f"{_PREFIX}name={encode_name(meta.name)}",
        f"{_PREFIX}size={meta.size_bytes}",
    ]
    if meta.source is not None:
        tags.append(f"{_PREFIX}source={meta.source}")
    if meta.fs_type:
        tags.append(f"{_PREFIX}fstype={meta.fs_type}")
    if meta.access_type:
        tags.append(f"{_PREFIX}access={meta.access_type}")
    return tuple(validate_tag(tag) for tag in tags)


def _fields(tags: Iterable[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for tag in tags:
        if tag.startswith(_PREFIX) and "=" in tag:
            key, _, value = tag[len(_PREFIX) :].partition("=")
            if key in fields and fields[key] != value:
                raise ValueError(f"conflicting values for {key!r}: {fields[key]!r} and {value!r}")
            fields[key] = value
    return fields


def _source(text: str) -> Source:
    kind, sep, ident = text.partition(":")
    if not sep or not ident:
        raise ValueError(f"source {text!r} is not <kind>:<id>")
    return Source(SourceKind(kind), ident)


def decode_tags(tags: Iterable[str], *, lv: str = "LV") -> LvMetadata | None:
    """Read our metadata back; None for LVs that are not this driver's volumes or snapshots.

    An LV that carries the owner tag but unreadable metadata raises Internal: someone edited the tags.
    """
    tags = tuple(tags)
    if OWNER_TAG not in tags:
        return None
    try:
        fields = _fields(tags)
        if "kind" not in fields and not fields:
            return None  # owned infrastructure such as a thin pool: neither a volume nor a snapshot
        size = int(fields["size"])
        if size < 0 or not fields["size"].isdigit():
            raise ValueError(f"size {fields['size']!r} is not a byte count")
        return LvMetadata(
            kind=LvKind(fields["kind"]),
            name=decode_name(fields["name"]),
            size_bytes=size,
            source=_source(fields["source"]) if "source" in fields else None,
            fs_type=fields.get("fstype") or None,
            access_type=fields.get("access") or None,
        )
    except (KeyError, ValueError) as exc:
        raise Internal(
            f"{lv} carries the {OWNER_TAG} tag but its metadata tags are unreadable ({exc!r}); "
            f"inspect them with `lvs -o lv_name,lv_tags` and repair or remove the {OWNER_TAG} tag"
        ) from None
