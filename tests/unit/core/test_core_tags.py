import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcsi.core.errors import Internal, InvalidArgument
from localcsi.core.tags import (
    OWNER_TAG,
    LvKind,
    LvMetadata,
    Source,
    SourceKind,
    decode_name,
    decode_tags,
    encode_name,
    encode_tags,
    validate_tag,
)

pytestmark = pytest.mark.unit

LVM_TAG = re.compile(r"[A-Za-z0-9_+.\-/=!:&#]{1,1024}")
csi_names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=128)
ids = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}/[A-Za-z0-9_.+-]{1,20}/(csi|snap)-[0-9a-f]{32}", fullmatch=True)
metadata = st.builds(
    LvMetadata,
    kind=st.sampled_from(LvKind),
    name=csi_names,
    size_bytes=st.integers(min_value=0, max_value=2**63 - 1),
    source=st.none() | st.builds(Source, kind=st.sampled_from(SourceKind), id=ids),
    fs_type=st.sampled_from([None, "ext4", "xfs"]),
    access_type=st.sampled_from([None, "mount", "block"]),
)


@given(metadata)
def test_tags_round_trip_and_obey_lvm2_tag_rules(meta: LvMetadata) -> None:
    tags = encode_tags(meta)
    assert OWNER_TAG in tags
    for tag in tags:
        assert LVM_TAG.fullmatch(tag), tag
        assert not tag.startswith("-")
    assert decode_tags(tags) == meta


@given(metadata, st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), max_size=3))
def test_foreign_tags_beside_ours_do_not_disturb_decoding(meta: LvMetadata, foreign: list[str]) -> None:
    tags = [*foreign, *reversed(encode_tags(meta))]
    assert decode_tags(tags) == meta


@given(csi_names)
def test_names_round_trip_through_url_safe_base64(name: str) -> None:
    encoded = encode_name(name)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", encoded)
    assert decode_name(encoded) == name


def test_lvs_without_the_owner_tag_are_not_ours() -> None:
    assert decode_tags(["backup", "localcsi.io/name=YQ"]) is None
    assert decode_tags([]) is None


def test_owner_tag_with_missing_fields_is_an_internal_error_naming_the_lv() -> None:
    with pytest.raises(Internal, match="vg0/csi-x"):
        decode_tags([OWNER_TAG, "localcsi.io/kind=volume"], lv="vg0/csi-x")


@pytest.mark.parametrize(
    "bad",
    [
        "localcsi.io/size=-1",
        "localcsi.io/size=1e3",
        "localcsi.io/kind=disk",
        "localcsi.io/source=nowhere",
        "localcsi.io/source=tape:x",
    ],
)
def test_corrupt_fields_are_internal_errors(bad: str) -> None:
    good = encode_tags(LvMetadata(LvKind.VOLUME, "pvc-1", 1024))
    key = bad.split("=", maxsplit=1)[0]
    tags = [tag for tag in good if not tag.startswith(key + "=")] + [bad]
    with pytest.raises(Internal, match="unreadable"):
        decode_tags(tags)


def test_conflicting_duplicate_fields_are_internal_errors() -> None:
    tags = [*encode_tags(LvMetadata(LvKind.VOLUME, "a", 1)), "localcsi.io/size=2"]
    with pytest.raises(Internal, match="conflicting"):
        decode_tags(tags)


@pytest.mark.parametrize("encoded", ["a", "ab$c", "////", "_w"])
def test_decode_name_rejects_what_encode_name_never_makes(encoded: str) -> None:
    with pytest.raises(ValueError, match=r"base64|UTF-8"):
        decode_name(encoded)


@pytest.mark.parametrize("tag", ["", "-x", "a b", "a,b", "a;b", "x" * 1025, "ü"])
def test_invalid_tags_are_refused(tag: str) -> None:
    with pytest.raises(InvalidArgument, match="tag"):
        validate_tag(tag)


def test_negative_size_is_refused_before_tagging() -> None:
    with pytest.raises(InvalidArgument, match="negative"):
        encode_tags(LvMetadata(LvKind.VOLUME, "a", -1))


def test_owned_infrastructure_without_metadata_is_not_a_volume() -> None:
    assert decode_tags([OWNER_TAG]) is None
    with pytest.raises(Internal):
        decode_tags([OWNER_TAG, "localcsi.io/size=1"])
