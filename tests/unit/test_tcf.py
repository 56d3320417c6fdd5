"""TCF v2 TC strings: the IAB's own examples decode to their documented values, every core field round-trips
through an independent bit-writer, and no input, however hostile, gets anything but a TcStringError."""

import base64
import contextlib
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from adserve.privacy.tcf import (
    MAX_TC_STRING_LENGTH,
    NOT_ALLOWED,
    REQUIRE_CONSENT,
    TcString,
    TcStringError,
    decode_tc_string,
)
from hypothesis import given
from hypothesis import strategies as st

from tests.support.tc_strings import EXPECTED, FLIPPED, BitWriter, core

# Example strings and the values the IAB documents for them: InteractiveAdvertisingBureau/iabtcf-java,
# iabtcf-decoder/src/test/java/com/iabtcf/decoder/TCStringV2Test.java (strings made with the IAB's encoder).
IAB_FULL = "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA"
IAB_BITFIELD_VENDORS = "COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA"
IAB_DISCLOSED_ALLOWED_PUBLISHER = ".IBAgAAAgAIAwgAgAAAAEAAAACA.QAagAQAgAIAwgA.cAAAAAAAITg="
IAB_RANGE_LEGITIMATE_INTEREST = "COv__-wOv__-wC2AAAENAPCgAAAAAAAAAAAAA_wAQA_gEBABAEAAAA"
IAB_DISCLOSED_VENDORS = (
    ".IFoEUQQgAIQwgIwQABAEAAAAOIAACAIAAAAQAIAgEAACEAAAAAgAQBAAAAAAAGBAAgAAAAAAAFAAECAAAgAAQARAEQAAAAAJ"
    "AAIAAgAAAYQEAAAQmAgBC3ZAYzUw"
)
IAB_TWO_RANGES = "COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAYFfAV-BVkAGBVYFWAAA"
IAB_ONE_RANGE = "COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAQFfgUbABAUaAAA"
IAB_PURPOSES_1_2 = "COwxsONOwxsONKpAAAENAdCAAMAAAAAAAAAAAAAAAAAA"


def test_the_iab_example_decodes_every_core_field_to_its_documented_value() -> None:
    tc = decode_tc_string(IAB_FULL)

    assert tc.version == 2
    assert tc.created == datetime(2020, 1, 26, 17, 1, tzinfo=UTC)
    assert tc.last_updated == datetime(2021, 2, 2, 17, 1, tzinfo=UTC)
    assert (tc.cmp_id, tc.cmp_version, tc.consent_screen) == (675, 2, 1)
    assert (tc.vendor_list_version, tc.tcf_policy_version) == (15, 2)
    assert (tc.consent_language, tc.publisher_cc) == ("EN", "AA")
    assert (tc.is_service_specific, tc.use_non_standard_texts, tc.purpose_one_treatment) == (False, False, True)
    assert tc.special_feature_opt_ins == {1}
    assert tc.purposes_consent == {2, 10}
    assert tc.purposes_legitimate_interest == {2, 9}


@pytest.mark.parametrize("suffix", ["", IAB_DISCLOSED_ALLOWED_PUBLISHER], ids=["core only", "with other segments"])
def test_the_iab_bitfield_example_decodes_its_vendors_and_skips_the_other_segments(suffix: str) -> None:
    tc = decode_tc_string(IAB_BITFIELD_VENDORS + suffix)

    assert tc.purposes_consent == {3, 4, 5, 6, 7, 8, 9}
    assert tc.vendor_consents == {23, 37, 47, 48, 53, 65, 98}
    assert tc.vendor_legitimate_interests == {37, 47, 48, 53, 65, 98, 129}
    assert tc.vendor_consented(98)
    assert not tc.vendor_consented(129)


@pytest.mark.parametrize(
    ("text", "consents"),
    [(IAB_TWO_RANGES + IAB_DISCLOSED_VENDORS, {702, 703}), (IAB_ONE_RANGE + IAB_DISCLOSED_VENDORS, {703})],
    ids=["two ranges", "one range"],
)
def test_the_iab_range_examples_decode_their_vendor_consents(text: str, consents: set[int]) -> None:
    assert decode_tc_string(text).vendor_consents == consents


def test_the_iab_range_example_decodes_its_vendor_legitimate_interests() -> None:
    assert decode_tc_string(IAB_RANGE_LEGITIMATE_INTEREST).vendor_legitimate_interests == {128}


def test_the_iab_example_with_purposes_one_and_two() -> None:
    assert {1, 2} <= decode_tc_string(IAB_PURPOSES_1_2).purposes_consent


@pytest.mark.parametrize("tc", [EXPECTED, FLIPPED], ids=["expected", "flags and letters flipped"])
def test_every_core_field_round_trips_with_bitfield_vendor_sections(tc: TcString) -> None:
    text = core(tc).bitfield_vendors(tc.vendor_consents, 1000).bitfield_vendors(tc.vendor_legitimate_interests, 64)

    assert decode_tc_string(text.encode()) == tc


def test_range_encoded_vendor_sections_decode_ids_and_ranges() -> None:
    text = core().range_vendors([(1, 1), (755, 755), (1000, 1000)], 1000).range_vendors([(8, 12), (64, 64)], 64)

    assert decode_tc_string(text.encode()) == EXPECTED


def test_overlapping_ranges_in_any_order_decode_to_their_union() -> None:
    text = core().range_vendors([(30, 40), (5, 6), (35, 50), (6, 6), (1, 2)], 60).range_vendors([], 0)

    assert decode_tc_string(text.encode()).vendor_consents == {1, 2, 5, 6, *range(30, 51)}


def test_publisher_restrictions_are_decoded_and_the_other_segments_skipped() -> None:
    # A type-0 restriction of purpose 3 for vendors 8-12, a type-1 one of purpose 7 for vendor 755
    writer = core().bitfield_vendors(EXPECTED.vendor_consents, 1000).range_vendors([(8, 12), (64, 64)], 64)
    writer.publisher_restrictions([(3, 0, 8, 12), (7, 1, 755, 755)])
    disclosed = BitWriter().uint(1, 3).bitfield_vendors({3, 4}, 4).encode()
    publisher = BitWriter().uint(3, 3).ids({1}, 24).ids({24}, 24).uint(0, 6).encode()

    decoded = decode_tc_string(f"{writer.encode()}.{disclosed}.{publisher}")

    assert decoded == replace(EXPECTED, publisher_restrictions=((3, 0, 8, 12), (7, 1, 755, 755)))
    assert decoded.restrictions(10, 3) == {NOT_ALLOWED}
    assert decoded.restrictions(13, 3) == frozenset()
    assert decoded.restrictions(755, 7) == {REQUIRE_CONSENT}


def test_a_core_cut_inside_its_publisher_restrictions_is_rejected() -> None:
    writer = core().bitfield_vendors({1}, 1).bitfield_vendors({}, 0).uint(2, 12).uint(3, 6).uint(0, 2).uint(1, 12)
    with pytest.raises(TcStringError, match="truncated: the core segment ends inside publisher restriction"):
        decode_tc_string(writer.encode())


def test_a_padded_segment_decodes_as_the_unpadded_one() -> None:
    text = core().bitfield_vendors({1}, 1).bitfield_vendors({}, 0).encode()
    assert len(text) % 4, "the example needs padding for the test to mean anything"

    assert decode_tc_string(text + "=" * (-len(text) % 4)) == decode_tc_string(text)


def test_the_most_ranges_that_fit_the_length_limit_decode_to_every_vendor() -> None:
    """Ranges covering all 65535 vendors ~1400 times over: merged before expansion, so the work stays bounded."""
    entries = [(1, 65535)] * 1400
    text = core().range_vendors(entries, 65535).range_vendors([], 0).encode()
    assert len(text) <= MAX_TC_STRING_LENGTH

    tc = decode_tc_string(text)

    assert tc.vendor_consents == frozenset(range(1, 65536))
    assert tc.vendor_consented(65535)


def truncated_core() -> str:
    """A valid core whose last bit is data, not padding, so that dropping any character loses a field's bits."""
    writer = core().bitfield_vendors(EXPECTED.vendor_consents, 1000)
    li_width = 64 + (-(len(writer.bits) + 17 + 64) % 24)
    writer.bitfield_vendors({*EXPECTED.vendor_legitimate_interests, li_width}, li_width)
    assert len(writer.bits) % 24 == 0
    return writer.encode()


def test_every_truncation_of_a_valid_string_is_rejected() -> None:
    text = truncated_core()
    decode_tc_string(text)

    for length in range(1, len(text)):
        with pytest.raises(TcStringError):
            decode_tc_string(text[:length])


VALID = core().bitfield_vendors({1}, 1).bitfield_vendors({}, 0).encode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        (VALID[:10] + " " + VALID[10:], "base64url"),
        (VALID[:10] + "+" + VALID[11:], "base64url"),
        (VALID + "..", "base64url"),
        (VALID[:8] + "==" + VALID[8:], "base64url"),
        ("é" + VALID[1:], "base64url"),
        (VALID[:5], "not valid base64url"),
        (core(version=1).bitfield_vendors({}, 0).bitfield_vendors({}, 0).encode(), "version 1"),
        (core(version=3).bitfield_vendors({}, 0).bitfield_vendors({}, 0).encode(), "version 3"),
        (core(replace(EXPECTED, consent_language="Z[")).encode(), "ConsentLanguage is not two letters"),
        (core(replace(EXPECTED, publisher_cc="`A")).encode(), "PublisherCC is not two letters"),
        (core().range_vendors([(9, 8)], 100).encode(), "vendor consents: range 9-8 ends before it starts"),
        (core().range_vendors([(0, 0)], 100).encode(), "vendor consents: vendor id outside 1-100"),
        (core().range_vendors([(90, 101)], 100).encode(), "vendor consents: vendor id outside 1-100"),
        (core().range_vendors([], 0).range_vendors([(1, 1)], 0).encode(), "legitimate interests: vendor id outside"),
        (core().uint(65535, 16).flag(False).uint(0, 64).encode(), "truncated: the core segment ends inside vendor"),
        (core().uint(100, 16).flag(True).uint(4095, 12).encode(), "truncated: the core segment ends inside vendor"),
        (core().bitfield_vendors({}, 0).encode(), "ends inside vendor legitimate interests MaxVendorId"),
        ("A" * (MAX_TC_STRING_LENGTH + 1), f"longer than {MAX_TC_STRING_LENGTH} characters"),
    ],
)
def test_malformed_strings_are_rejected_with_a_message_that_says_why(text: str, message: str) -> None:
    with pytest.raises(TcStringError, match=message):
        decode_tc_string(text)


def test_the_message_never_echoes_the_input() -> None:
    secret = "CPsecretSecretSecretSecret"
    for text in (secret + "!", secret + secret, secret[:5], "A" * (MAX_TC_STRING_LENGTH + 1)):
        with pytest.raises(TcStringError) as raised:
            decode_tc_string(text)
        assert "secret" not in str(raised.value).lower()
        assert len(str(raised.value)) < 100


def decodes_or_rejects(text: str) -> None:
    with contextlib.suppress(TcStringError):
        decode_tc_string(text)


@given(st.text(max_size=300))
def test_arbitrary_text_never_raises_anything_but_tc_string_error(text: str) -> None:
    decodes_or_rejects(text)


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=", max_size=300))
def test_arbitrary_base64url_never_raises_anything_but_tc_string_error(text: str) -> None:
    decodes_or_rejects(text)


@given(st.binary(max_size=600))
def test_arbitrary_bits_after_a_version_2_header_never_raise_anything_but_tc_string_error(tail: bytes) -> None:
    """Starting every string with version 2 sends random bits through every field and both vendor sections."""
    raw = bytes([0b00001000 | (tail[0] & 0b11) if tail else 0b00001000]) + tail[1:]
    decodes_or_rejects(base64.urlsafe_b64encode(raw).rstrip(b"=").decode())
