"""Builds TC strings bit by bit as the TCF v2 spec lays them out, independently of adserve's decoder."""

import base64
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

from adserve.privacy.tcf import TcString


class BitWriter:
    """Writes TC string fields as the spec lays them out, independently of the decoder under test."""

    def __init__(self) -> None:
        self.bits = ""

    def uint(self, value: int, width: int) -> "BitWriter":
        assert 0 <= value < 1 << width
        self.bits += format(value, f"0{width}b") if width else ""
        return self

    def flag(self, value: bool) -> "BitWriter":
        return self.uint(int(value), 1)

    def ids(self, ids: Iterable[int], width: int) -> "BitWriter":
        chosen = set(ids)
        self.bits += "".join("1" if i in chosen else "0" for i in range(1, width + 1))
        return self

    def instant(self, moment: datetime) -> "BitWriter":
        return self.uint(round(moment.timestamp() * 10), 36)

    def letters(self, text: str) -> "BitWriter":
        return self.uint(ord(text[0]) - ord("A"), 6).uint(ord(text[1]) - ord("A"), 6)

    def bitfield_vendors(self, ids: Iterable[int], max_vendor_id: int) -> "BitWriter":
        return self.uint(max_vendor_id, 16).flag(False).ids(ids, max_vendor_id)

    def range_vendors(self, entries: list[tuple[int, int]], max_vendor_id: int) -> "BitWriter":
        self.uint(max_vendor_id, 16).flag(True).uint(len(entries), 12)
        for start, end in entries:
            self.flag(start != end).uint(start, 16)
            if start != end:
                self.uint(end, 16)
        return self

    def publisher_restrictions(self, restrictions: list[tuple[int, int, int, int]]) -> "BitWriter":
        """NumPubRestrictions, then each (purpose, type, first vendor, last vendor) as one entry of its own."""
        self.uint(len(restrictions), 12)
        for purpose, kind, first, last in restrictions:
            self.uint(purpose, 6).uint(kind, 2).uint(1, 12).flag(first != last).uint(first, 16)
            if first != last:
                self.uint(last, 16)
        return self

    def encode(self) -> str:
        padded = self.bits + "0" * (-len(self.bits) % 8)
        raw = int(padded, 2).to_bytes(len(padded) // 8, "big") if padded else b""
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


EXPECTED = TcString(
    version=2,
    created=datetime(2024, 5, 17, 9, 30, 12, 300000, tzinfo=UTC),
    last_updated=datetime(2025, 11, 3, 23, 59, 59, 900000, tzinfo=UTC),
    cmp_id=4095,
    cmp_version=1234,
    consent_screen=63,
    consent_language="FR",
    vendor_list_version=3001,
    tcf_policy_version=5,
    is_service_specific=True,
    use_non_standard_texts=False,
    special_feature_opt_ins=frozenset({1, 12}),
    purposes_consent=frozenset({1, 3, 24}),
    purposes_legitimate_interest=frozenset({2, 7, 10}),
    purpose_one_treatment=True,
    publisher_cc="DE",
    vendor_consents=frozenset({1, 755, 1000}),
    vendor_legitimate_interests=frozenset({8, 9, 10, 11, 12, 64}),
)
FLIPPED = replace(
    EXPECTED,
    is_service_specific=False,
    use_non_standard_texts=True,
    purpose_one_treatment=False,
    consent_language="ZY",
    publisher_cc="AZ",
)


def core(tc: TcString = EXPECTED, *, version: int = 2) -> BitWriter:
    """Every core field up to the vendor sections, which the caller appends."""
    return (
        BitWriter()
        .uint(version, 6)
        .instant(tc.created)
        .instant(tc.last_updated)
        .uint(tc.cmp_id, 12)
        .uint(tc.cmp_version, 12)
        .uint(tc.consent_screen, 6)
        .letters(tc.consent_language)
        .uint(tc.vendor_list_version, 12)
        .uint(tc.tcf_policy_version, 6)
        .flag(tc.is_service_specific)
        .flag(tc.use_non_standard_texts)
        .ids(tc.special_feature_opt_ins, 12)
        .ids(tc.purposes_consent, 24)
        .ids(tc.purposes_legitimate_interest, 24)
        .flag(tc.purpose_one_treatment)
        .letters(tc.publisher_cc)
    )


def tc_string(
    *,
    purposes: Iterable[int] = (),
    legitimate_interest: Iterable[int] = (),
    vendors: Iterable[int] = (),
    vendor_legitimate_interests: Iterable[int] = (),
    restrictions: Iterable[tuple[int, int, int, int]] = (),
) -> str:
    """A TC string granting exactly these purposes and vendors (the other fields as EXPECTED's), with these
    publisher restrictions, (purpose, type, first vendor, last vendor) each, written when there are any."""
    tc = replace(
        EXPECTED, purposes_consent=frozenset(purposes), purposes_legitimate_interest=frozenset(legitimate_interest)
    )
    vendor_ids, interest_ids = set(vendors), set(vendor_legitimate_interests)
    writer = (
        core(tc)
        .bitfield_vendors(vendor_ids, max(vendor_ids, default=0))
        .bitfield_vendors(interest_ids, max(interest_ids, default=0))
    )
    return writer.publisher_restrictions(list(restrictions)).encode() if restrictions else writer.encode()
