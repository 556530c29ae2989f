import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcsi.core.errors import Aborted, InvalidArgument
from localcsi.core.pagination import decode_token, encode_token, paginate

pytestmark = pytest.mark.unit


def ident(item: str) -> str:
    return item


def walk(items: list[str], size: int) -> list[str]:
    seen: list[str] = []
    token = ""
    while True:
        page = paginate(items, ident, size, token)
        seen += page.entries
        if not page.next_token:
            return seen
        assert len(page.entries) == size
        token = page.next_token


@given(st.sets(st.text(min_size=1, max_size=30), max_size=60), st.integers(min_value=1, max_value=25))
def test_pages_cover_every_item_once_in_order(items: set[str], size: int) -> None:
    assert walk(list(items), size) == sorted(items)


def test_zero_max_entries_means_everything() -> None:
    page = paginate(["b", "a"], ident, 0, "")
    assert page.entries == ("a", "b") and page.next_token == ""


def test_an_exact_last_page_has_no_next_token() -> None:
    assert paginate(["a", "b"], ident, 2, "").next_token == ""


def test_deleting_the_tokens_item_neither_skips_nor_repeats() -> None:
    items = [f"v{i:03}" for i in range(10)]
    first = paginate(items, ident, 3, "")
    remaining = [item for item in items if item != first.entries[-1]]
    second = paginate(remaining, ident, 3, first.next_token)
    assert second.entries == ("v003", "v004", "v005")


def test_items_added_after_the_token_appear_later() -> None:
    first = paginate(["a", "c", "e"], ident, 2, "")
    second = paginate(["a", "b", "c", "d", "e"], ident, 2, first.next_token)
    assert second.entries == ("d", "e")


@pytest.mark.parametrize("token", ["invalid-token", "lc1.", "lc1.!!!!", "lc1.@@", "lc1._w==", "123"])
def test_bad_tokens_are_aborted(token: str) -> None:
    with pytest.raises(Aborted, match="starting_token"):
        paginate(["a"], ident, 1, token)


@given(st.text(min_size=1))
def test_tokens_round_trip(key: str) -> None:
    assert decode_token(encode_token(key)) == key


def test_negative_max_entries_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="max_entries"):
        paginate(["a"], ident, -1, "")
