"""mstore.core.ids: what an object id looks like, and how messages show one."""

from __future__ import annotations

import pytest

from mstore.core.ids import is_object_id, short

ID = "0123456789abcdef" * 4


def test_an_id_is_64_lowercase_hex_digits() -> None:
    assert is_object_id(ID)
    for text in (ID.upper(), ID[:-1], ID + "0", "g" * 64, " " + ID[1:], ""):
        assert not is_object_id(text), text


@pytest.mark.parametrize(("value", "shown"), [(ID, "0123456789ab"), (None, "(no ref)")])
def test_messages_show_the_first_twelve_digits_or_say_none(value: str | None, shown: str) -> None:
    assert short(value) == shown
    assert short(None, absent="-") == "-"
