"""HmacSha256 is HMAC-SHA256 (RFC 2104): the standard library's MAC for keys shorter than, as long as and
longer than SHA-256's block, and for any message."""

import hashlib
import hmac

import pytest
from adserve.core.keyed_hash import HmacSha256
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize("key_length", [1, 32, 63, 64, 65, 200])
def test_the_mac_is_the_standard_librarys_at_every_key_length(key_length: int) -> None:
    key = bytes((7 * i + 3) % 256 for i in range(key_length))
    mac = HmacSha256(key)
    for message in (b"", b"kid.payload", bytes(range(256)) * 3):
        assert mac.digest(message) == hmac.new(key, message, hashlib.sha256).digest()


@given(key=st.binary(min_size=1, max_size=160), messages=st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_one_key_gives_each_message_its_own_mac(key: bytes, messages: list[bytes]) -> None:
    mac = HmacSha256(key)
    assert [mac.digest(m) for m in messages] == [hmac.new(key, m, hashlib.sha256).digest() for m in messages]


@given(
    key=st.binary(min_size=1, max_size=160), prefix=st.binary(max_size=200), messages=st.lists(st.binary(max_size=300))
)
def test_a_prefixed_mac_is_the_mac_of_prefix_and_message(key: bytes, prefix: bytes, messages: list[bytes]) -> None:
    # Given a MAC with a prefix absorbed once, then used for several messages
    mac = HmacSha256(key)
    prefixed = mac.with_prefix(prefix)
    # Then each MAC is that of the whole message, and the unprefixed MAC is unchanged
    for message in messages:
        assert prefixed.digest(message) == hmac.new(key, prefix + message, hashlib.sha256).digest()
        assert mac.digest(message) == hmac.new(key, message, hashlib.sha256).digest()
