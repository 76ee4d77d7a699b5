"""Cookie signing, the API key check, session CSRF and the sign-in form's own token."""

from __future__ import annotations

import pytest

from services.console import auth
from services.console.pages.session import _safe_next
from services.console.settings import ConsoleSettings

KEY = b"k" * 32
OTHER = b"o" * 32


def test_unsign_accepts_only_its_own_signature() -> None:
    cookie = f"abc.{auth._sign(KEY, 'abc')}"
    assert auth.unsign(KEY, cookie) == "abc"
    assert auth.unsign(OTHER, cookie) is None
    assert auth.unsign(KEY, "abd." + cookie.split(".", 1)[1]) is None
    assert auth.unsign(KEY, cookie[:-1] + ("0" if cookie[-1] != "0" else "1")) is None
    for broken in (None, "", "no-dot", ".", f".{auth._sign(KEY, 'x')}"):
        assert auth.unsign(KEY, broken) is None, broken


def test_a_value_with_dots_is_split_at_the_last_one() -> None:
    assert auth.unsign(KEY, f"a.b.{auth._sign(KEY, 'a.b')}") == "a.b"


def test_the_signing_key_is_derived_from_the_api_key_or_given() -> None:
    derived = auth.signing_key(ConsoleSettings(api_key="the-api-key"))
    assert derived == auth.signing_key(ConsoleSettings(api_key="the-api-key"))
    assert derived != b"the-api-key"
    assert b"the-api-key" not in derived
    assert derived != auth.signing_key(ConsoleSettings(api_key="another-key"))
    given = ConsoleSettings(api_key="the-api-key", session_secret="s3cret")
    assert auth.signing_key(given) == b"s3cret"


def test_without_an_api_key_nobody_signs_in_and_keys_are_random() -> None:
    settings = ConsoleSettings()
    assert not auth.api_key_matches(settings, "")
    assert auth.signing_key(settings) != auth.signing_key(settings)


def test_api_key_matches_exactly() -> None:
    settings = ConsoleSettings(api_key="the-api-key")
    assert auth.api_key_matches(settings, "the-api-key")
    for wrong in ("", "the-api-ke", "the-api-key ", "THE-API-KEY"):
        assert not auth.api_key_matches(settings, wrong), wrong


def test_session_csrf() -> None:
    principal = auth.Principal("ann", "api_key", "tok-123")
    auth.check_csrf(principal, "tok-123")
    for given in (None, "", "tok-12", "tok-1234"):
        with pytest.raises(auth.CsrfRejected):
            auth.check_csrf(principal, given)


def test_the_signin_token_needs_its_cookie_and_its_field() -> None:
    cookie, field = auth.new_signin_token(KEY)
    assert auth.signin_token_ok(KEY, cookie, field)
    assert field not in cookie  # the field cannot be read off the cookie, nor the reverse
    other_cookie, other_field = auth.new_signin_token(KEY)
    assert other_cookie != cookie
    assert not auth.signin_token_ok(KEY, cookie, other_field)
    assert not auth.signin_token_ok(KEY, other_cookie, field)
    assert not auth.signin_token_ok(KEY, None, field)
    assert not auth.signin_token_ok(KEY, cookie, None)
    assert not auth.signin_token_ok(KEY, cookie, "")
    assert not auth.signin_token_ok(OTHER, cookie, field)
    # A cookie made with another key (another console) does not verify here.
    foreign_cookie, foreign_field = auth.new_signin_token(OTHER)
    assert not auth.signin_token_ok(KEY, foreign_cookie, foreign_field)
    # The nonce alone (a cookie with its signature cut off) is not enough.
    assert not auth.signin_token_ok(KEY, cookie.rpartition(".")[0], field)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/schedules?state=PAUSED", "/schedules?state=PAUSED"),
        ("/", "/"),
        (None, "/"),
        ("", "/"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("schedules", "/"),
    ],
)
def test_next_is_only_ever_a_path_of_this_site(given: str | None, expected: str) -> None:
    assert _safe_next(given) == expected
