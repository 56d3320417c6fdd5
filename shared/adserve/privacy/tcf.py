"""IAB TCF v2 consent strings (TC strings): the core segment decoded into what a consent policy reads.

Our own decoder rather than PyPI's `iab-tcf` (0.2.2, last release October 2022, before TCF 2.2) or its fork
`iab-tcf-bitarray` (0.2.3, 2024): both pull in a C extension (`bitarray-hardbyte` ships only an sdist, so the
layer build would need a compiler) and both read past the end of a truncated string as though the missing bits
were set, so `CO5VTlWO5VTl` decodes to consent for all 24 purposes. The core segment is a fixed run of fields
plus two vendor sections: a few dozen lines of stdlib with every read bounds-checked, tested against the IAB's
own example strings (iabtcf-java), is smaller and safer than either dependency.
"""

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# The whole string, all segments. A core segment with both vendor sections as bitfields up to vendor id ~24000
# fits, some twenty times the highest id on the Global Vendor List, and TC strings travel in cookies and headers
# that servers cap at 4-8 KiB anyway. It also bounds the decoder's work: every read is checked against it.
MAX_TC_STRING_LENGTH = 8192

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LETTERS = 26


class TcStringError(ValueError):
    """A TC string that is not a well-formed TCF v2 core segment; the message says what is wrong, never echoes it."""


@dataclass(frozen=True, slots=True)
class TcString:
    """The core segment of a TC string. Id sets are 1-based, as the TCF numbers purposes, features and vendors."""

    version: int
    created: datetime
    last_updated: datetime
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    tcf_policy_version: int
    is_service_specific: bool
    use_non_standard_texts: bool
    special_feature_opt_ins: frozenset[int]
    purposes_consent: frozenset[int]
    purposes_legitimate_interest: frozenset[int]
    purpose_one_treatment: bool
    publisher_cc: str
    vendor_consents: frozenset[int]
    vendor_legitimate_interests: frozenset[int]
    publisher_restrictions: tuple[tuple[int, int, int, int], ...] = ()
    """(purpose, restriction type, first vendor id, last vendor id) per range of the core's last section."""

    def vendor_consented(self, vendor_id: int) -> bool:
        """Whether the user consented to this vendor (Global Vendor List id)."""
        return vendor_id in self.vendor_consents

    def restrictions(self, vendor_id: int, purpose: int) -> frozenset[int]:
        """The restriction types the publisher put on this vendor for this purpose: ``NOT_ALLOWED``,
        ``REQUIRE_CONSENT``, ``REQUIRE_LEGITIMATE_INTEREST`` (TCF v2 core segment, PubRestrictions)."""
        return frozenset(
            kind
            for restricted, kind, first, last in self.publisher_restrictions
            if restricted == purpose and first <= vendor_id <= last
        )


NOT_ALLOWED = 0
"""The publisher does not allow the vendor this purpose at all, whatever the user consented to."""
REQUIRE_CONSENT = 1
"""Only the user's consent counts for the purpose, not the vendor's legitimate interest."""
REQUIRE_LEGITIMATE_INTEREST = 2
"""Only legitimate interest counts for the purpose, not consent (for a vendor that declared it flexible)."""


class _Bits:
    """Reads big-endian unsigned fields of any width off a byte string, refusing to read past its end."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._size = len(data) * 8
        self._pos = 0

    def uint(self, width: int, field: str) -> int:
        end = self._pos + width
        if end > self._size:
            raise TcStringError(f"truncated: the core segment ends inside {field}")
        first, last = self._pos // 8, (end + 7) // 8
        chunk = int.from_bytes(self._data[first:last], "big")
        self._pos = end
        return (chunk >> (last * 8 - end)) & ((1 << width) - 1)

    def remaining(self) -> int:
        return self._size - self._pos

    def flag(self, field: str) -> bool:
        return self.uint(1, field) == 1

    def ids(self, width: int, field: str) -> frozenset[int]:
        """A bitfield whose first bit stands for id 1."""
        value = self.uint(width, field)
        return frozenset(i for i, bit in enumerate(format(value, f"0{width}b"), start=1) if bit == "1")

    def instant(self, field: str) -> datetime:
        return _EPOCH + timedelta(milliseconds=100 * self.uint(36, field))

    def letters(self, field: str) -> str:
        first, second = self.uint(6, field), self.uint(6, field)
        if first >= _LETTERS or second >= _LETTERS:
            raise TcStringError(f"{field} is not two letters A-Z")
        return chr(ord("A") + first) + chr(ord("A") + second)


def decode_tc_string(text: str) -> TcString:
    """Decode the core segment of a TCF v2 TC string, its publisher restrictions included; the other segments
    (disclosed vendors, publisher TC) are checked for their alphabet only and skipped."""
    if not text:
        raise TcStringError("empty TC string")
    if len(text) > MAX_TC_STRING_LENGTH:
        raise TcStringError(f"longer than {MAX_TC_STRING_LENGTH} characters")
    segments = text.split(".")
    if not all(_SEGMENT.fullmatch(segment) for segment in segments):
        raise TcStringError("not base64url segments separated by '.'")
    bits = _Bits(_base64url(segments[0]))
    version = bits.uint(6, "Version")
    if version != 2:
        raise TcStringError(f"version {version}, only TCF v2 is supported")
    return TcString(
        version=version,
        created=bits.instant("Created"),
        last_updated=bits.instant("LastUpdated"),
        cmp_id=bits.uint(12, "CmpId"),
        cmp_version=bits.uint(12, "CmpVersion"),
        consent_screen=bits.uint(6, "ConsentScreen"),
        consent_language=bits.letters("ConsentLanguage"),
        vendor_list_version=bits.uint(12, "VendorListVersion"),
        tcf_policy_version=bits.uint(6, "TcfPolicyVersion"),
        is_service_specific=bits.flag("IsServiceSpecific"),
        use_non_standard_texts=bits.flag("UseNonStandardTexts"),
        special_feature_opt_ins=bits.ids(12, "SpecialFeatureOptIns"),
        purposes_consent=bits.ids(24, "PurposesConsent"),
        purposes_legitimate_interest=bits.ids(24, "PurposesLITransparency"),
        purpose_one_treatment=bits.flag("PurposeOneTreatment"),
        publisher_cc=bits.letters("PublisherCC"),
        vendor_consents=_vendors(bits, "vendor consents"),
        vendor_legitimate_interests=_vendors(bits, "vendor legitimate interests"),
        publisher_restrictions=_publisher_restrictions(bits),
    )


def _base64url(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment.rstrip("=") + "=" * (-len(segment.rstrip("=")) % 4))
    except binascii.Error:
        raise TcStringError("core segment is not valid base64url") from None


def _vendors(bits: _Bits, section: str) -> frozenset[int]:
    """A vendor section: MaxVendorId, then a bitfield of that many bits or a list of ids and id ranges.

    Ranges may overlap and come in any order; they are merged before they are expanded, so the work is bounded by
    MaxVendorId (65535) whatever the number of entries (at most 4095, and no more than the bits that carry them).
    """
    max_vendor_id = bits.uint(16, f"{section} MaxVendorId")
    if not bits.flag(f"{section} IsRangeEncoding"):
        return bits.ids(max_vendor_id, f"{section} bitfield")
    ranges: list[tuple[int, int]] = []
    for _ in range(bits.uint(12, f"{section} NumEntries")):
        is_range = bits.flag(f"{section} IsARange")
        start = bits.uint(16, f"{section} StartOrOnlyVendorId")
        end = bits.uint(16, f"{section} EndVendorId") if is_range else start
        if start > end:
            raise TcStringError(f"{section}: range {start}-{end} ends before it starts")
        if start < 1 or end > max_vendor_id:
            raise TcStringError(f"{section}: vendor id outside 1-{max_vendor_id}")
        ranges.append((start, end))
    ids: set[int] = set()
    covered = 0
    for start, end in sorted(ranges):
        ids.update(range(max(start, covered + 1), end + 1))
        covered = max(covered, end)
    return frozenset(ids)


def _publisher_restrictions(bits: _Bits) -> tuple[tuple[int, int, int, int], ...]:
    """The core's last section: NumPubRestrictions, then per restriction its PurposeId, RestrictionType and the
    vendors it applies to (ids and id ranges, as in a range-encoded vendor section, without a MaxVendorId).

    A core that ends before the section's 12-bit count (strings that stop after the vendor sections, as some
    encoders write them when there is none) has no restrictions; one that ends inside the section is truncated.
    """
    if bits.remaining() < 12:  # NumPubRestrictions' width
        return ()
    restrictions: list[tuple[int, int, int, int]] = []
    for _ in range(bits.uint(12, "NumPubRestrictions")):
        purpose = bits.uint(6, "publisher restriction PurposeId")
        kind = bits.uint(2, "publisher restriction RestrictionType")
        for _ in range(bits.uint(12, "publisher restriction NumEntries")):
            is_range = bits.flag("publisher restriction IsARange")
            first = bits.uint(16, "publisher restriction StartOrOnlyVendorId")
            last = bits.uint(16, "publisher restriction EndVendorId") if is_range else first
            if first < 1 or first > last:
                raise TcStringError(f"publisher restriction: vendor range {first}-{last} is empty")
            restrictions.append((purpose, kind, first, last))
    return tuple(restrictions)
