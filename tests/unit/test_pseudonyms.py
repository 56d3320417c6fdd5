"""Keyed pseudonyms: stable under one key, unlinkable across keys, never the unkeyed hash anyone can redo."""

import hashlib

import pytest
from adserve.privacy.pseudonyms import PSEUDONYM_HEX_LENGTH, Pseudonymizer

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def test_a_pseudonym_is_stable_under_one_key_and_differs_per_listener() -> None:
    pseudonyms = Pseudonymizer(KEY)
    assert pseudonyms.listener("listener-1") == Pseudonymizer(KEY).listener("listener-1")
    assert pseudonyms.listener("listener-1") != pseudonyms.listener("listener-2")
    assert len(pseudonyms.listener("listener-1")) == PSEUDONYM_HEX_LENGTH


def test_without_the_key_a_list_of_ids_does_not_reveal_who_a_pseudonym_is() -> None:
    # Rotating the key (or not holding it) gives unrelated pseudonyms: old logs cannot be linked to new traffic
    pseudonym = Pseudonymizer(KEY).listener("listener-1")
    assert pseudonym != Pseudonymizer(OTHER_KEY).listener("listener-1")
    unkeyed = {hashlib.sha256(b"listener-1").hexdigest(), hashlib.blake2b(b"listener-1").hexdigest()}
    assert not any(digest.startswith(pseudonym) for digest in unkeyed)


def test_listener_and_session_pseudonyms_of_one_string_differ() -> None:
    pseudonyms = Pseudonymizer(KEY)
    assert pseudonyms.listener("abc") != pseudonyms.session("abc")


def test_erasure_looks_under_the_current_and_the_previous_key() -> None:
    rotated = Pseudonymizer(OTHER_KEY, previous=KEY)
    assert rotated.every_listener_pseudonym("listener-1") == (
        Pseudonymizer(OTHER_KEY).listener("listener-1"),
        Pseudonymizer(KEY).listener("listener-1"),
    )
    assert Pseudonymizer(KEY, previous=KEY).every_listener_pseudonym("x") == (Pseudonymizer(KEY).listener("x"),)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Pseudonymizer(b"short")
