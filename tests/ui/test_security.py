"""The web view's security rules, on their own: which Host headers name the server,
which origins may write, the token and CSRF values."""

from __future__ import annotations

import pytest

from mstore.ui.security import Binding, Forbidden, check_origin, csrf_value, new_token, same


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("127.0.0.1:8765", True),
        ("localhost:8765", True),
        ("LOCALHOST:8765", True),
        ("[::1]:8765", True),
        ("127.0.0.1:8766", False),  # another port: another server
        ("127.0.0.1", False),  # no port: not what a browser sends to :8765
        ("evil.example:8765", False),  # DNS rebinding: a name re-pointed at 127.0.0.1
        ("127.0.0.1.nip.io:8765", False),
        ("user@127.0.0.1:8765", False),
        ("127.0.0.1:8765/x", False),
        ("", False),
        (None, False),
    ],
)
def test_a_loopback_server_answers_only_to_its_own_address(
    header: str | None, allowed: bool
) -> None:
    assert Binding("127.0.0.1", 8765).allows_host(header) is allowed


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("192.168.1.20:8765", True),  # any address of the machine, as an IP literal
        ("[fe80::1]:8765", True),
        ("localhost:8765", True),
        ("models.internal:8765", False),  # a name is what rebinding needs: never
        ("192.168.1.20:80", False),
    ],
)
def test_a_server_on_every_interface_answers_to_ip_literals_only(
    header: str, allowed: bool
) -> None:
    assert Binding("0.0.0.0", 8765).allows_host(header) is allowed


def test_a_named_host_answers_to_that_name_only() -> None:
    binding = Binding("models.internal", 8765)

    assert binding.allows_host("models.internal:8765")
    assert not binding.allows_host("127.0.0.1:8765")
    assert not binding.loopback and not binding.wildcard


@pytest.mark.parametrize(
    ("origin", "referer"),
    [
        ("http://127.0.0.1:8765", None),
        (None, "http://127.0.0.1:8765/promote?source=staging"),
        ("HTTP://127.0.0.1:8765", None),
    ],
)
def test_a_write_from_the_server_s_own_pages_passes(
    origin: str | None, referer: str | None
) -> None:
    check_origin(origin, referer, "127.0.0.1:8765")


@pytest.mark.parametrize(
    ("origin", "referer"),
    [
        ("http://127.0.0.1:9999", None),  # another server on this machine
        ("http://evil.example", "http://127.0.0.1:8765/promote"),  # Origin wins
        ("null", None),  # a sandboxed frame, a file:// page
        ("https://127.0.0.1:8765", None),
        (None, "http://127.0.0.1:8765.evil.example/"),
        (None, "javascript:alert(1)"),
        (None, None),
    ],
)
def test_a_write_from_anywhere_else_is_refused(origin: str | None, referer: str | None) -> None:
    with pytest.raises(Forbidden):
        check_origin(origin, referer, "127.0.0.1:8765")


def test_tokens_are_fresh_and_the_csrf_value_does_not_reveal_them() -> None:
    first, second = new_token(), new_token()

    assert first != second and len(first) >= 43
    assert csrf_value(first) != csrf_value(second)
    assert first not in csrf_value(first)
    assert same(first, first) and not same(first, second) and not same(None, first)


def test_the_printed_address_is_loopback_for_a_wildcard_bind() -> None:
    assert Binding("0.0.0.0", 8765).url("/x") == "http://127.0.0.1:8765/x"
    assert Binding("::1", 8765).url() == "http://[::1]:8765/"
