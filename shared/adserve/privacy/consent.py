"""What a decision may do with the listener's data: the consent a request carries, resolved to permissions.

Three permissions, each a different use the law asks consent for:

- ``personalise``: use the listener's own fields (device, age bucket) to choose and to learn. Without it the
  decision is *contextual*: the model sees only what describes the moment (placement, content type, genre,
  hour, day, country), and campaigns targeting the listener's own fields are not eligible.
- ``cap_frequency``: read and write counters about this listener (frequency caps). Without it nothing is read
  or written under the listener's pseudonym, and campaigns with a frequency cap are withheld: a cap is a
  promise to the advertiser that cannot be kept without counting.
- ``measure``: link the decision's log to the listener (its pseudonym), so outcomes can be measured and learnt
  per listener. Without it the record is logged without any pseudonym.

A request gives them as booleans, or as an IAB TCF v2 string (``tcf``), or both: with a TCF string the
string decides (``TCF_PURPOSES``) and a boolean can only take a permission away; without one, each boolean
decides and an absent one falls to the deployment's ``DEFAULT_CONSENT_POLICY`` (``strict``: no; ``legacy``:
yes). A listener under 18 is never personalised, whatever the consent says (EU DSA, art. 28).
"""

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator

from adserve.core.vocabulary import AgeBucket
from adserve.privacy.tcf import (
    MAX_TC_STRING_LENGTH,
    NOT_ALLOWED,
    REQUIRE_CONSENT,
    REQUIRE_LEGITIMATE_INTEREST,
    TcString,
    TcStringError,
    decode_tc_string,
)

ConsentPolicy = Literal["strict", "legacy"]
MINOR_AGE_BUCKETS = frozenset({AgeBucket.AGE_13_17})


class ServingMode(StrEnum):
    PERSONALISED = "personalised"
    CONTEXTUAL = "contextual"


class ConsentIn(BaseModel):
    """The listener's choices as the app's consent tool recorded them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Strict: a permission is given by JSON true, never by "yes", "1" or 1 (pydantic's lax mode reads those as true)
    personalise: StrictBool | None = Field(default=None, description="Use the listener's own fields to choose ads.")
    cap_frequency: StrictBool | None = Field(
        default=None, description="Keep counters about this listener (frequency caps)."
    )
    measure: StrictBool | None = Field(default=None, description="Link the decision's log to the listener.")
    tcf: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TC_STRING_LENGTH)] | None = Field(
        default=None, description="An IAB TCF v2 TC string; with it, a boolean can only take a permission away."
    )

    @field_validator("tcf")
    @classmethod
    def _decodable(cls, tcf: str | None) -> str | None:
        """Decoded while the request is validated, so a malformed string is a 422 naming ``consent.tcf``."""
        if tcf is not None:
            try:
                _decoded(tcf)
            except TcStringError as error:
                raise ValueError(f"not a valid TC string: {error}") from None
        return tcf

    @property
    def tc_string(self) -> TcString | None:
        return None if self.tcf is None else _decoded(self.tcf)


@lru_cache(maxsize=256)
def _decoded(tcf: str) -> TcString:
    """One decode per string for validation and use; apps resend the same string on every request."""
    return decode_tc_string(tcf)


TCF_PURPOSES: dict[str, tuple[int, ...]] = {
    "personalise": (3, 4),
    "cap_frequency": (1, 2),
    "measure": (1, 7),
}
"""TCF v2.2 purposes each permission needs consent for: 1 store/access information on a device, 2 use limited data
to select advertising, 3 create a personalised-ads profile, 4 use one to select ads, 7 measure ad performance
(legitimate interest is enough for 2 and 7, as the policy allows, never for 1). Capping needs 2, whose
illustrations include limiting how often an ad is shown, and measuring needs 7; both also need 1, for the id the
app reads from the device to name the listener (a counter's key, a log row's pseudonym): purpose 1 alone (a
string refusing 2) allows no counting, and 7 on legitimate interest alone links no log row to the listener."""
LEGITIMATE_INTEREST_PURPOSES = frozenset({2, 7})


@dataclass(frozen=True, slots=True)
class Permissions:
    personalise: bool
    cap_frequency: bool
    measure: bool

    @property
    def mode(self) -> ServingMode:
        return ServingMode.PERSONALISED if self.personalise else ServingMode.CONTEXTUAL


@dataclass(frozen=True)
class ConsentRules:
    """One deployment's reading of consent: the default for what a request leaves unsaid, and whose TCF
    vendor consent counts (adserve's operator's IAB vendor id, when it has one)."""

    default_policy: ConsentPolicy = "strict"
    tcf_vendor_id: int | None = None

    def permissions(self, consent: ConsentIn | None, age_bucket: AgeBucket | None) -> Permissions:
        """What this decision may do with the listener's data."""
        default = self.default_policy == "legacy"
        if consent is None:
            granted = {name: default for name in TCF_PURPOSES}
        elif consent.tc_string is not None:
            granted = {
                name: self._tcf_allows(consent.tc_string, purposes) and getattr(consent, name) is not False
                for name, purposes in TCF_PURPOSES.items()
            }
        else:
            granted = {
                name: default if getattr(consent, name) is None else bool(getattr(consent, name))
                for name in TCF_PURPOSES
            }
        if age_bucket in MINOR_AGE_BUCKETS:
            granted["personalise"] = False
        return Permissions(**granted)

    def _tcf_allows(self, decoded: TcString, purposes: tuple[int, ...]) -> bool:
        """Every purpose has the user's consent, or (where the policy allows it) legitimate interest; with a
        vendor id, the vendor's too, within what the publisher's restrictions on that vendor leave."""
        vendor = self.tcf_vendor_id
        for purpose in purposes:
            restricted = frozenset() if vendor is None else decoded.restrictions(vendor, purpose)
            if NOT_ALLOWED in restricted:
                return False
            consented = (
                REQUIRE_LEGITIMATE_INTEREST not in restricted
                and purpose in decoded.purposes_consent
                and (vendor is None or decoded.vendor_consented(vendor))
            )
            legitimate = (
                REQUIRE_CONSENT not in restricted
                and purpose in LEGITIMATE_INTEREST_PURPOSES
                and purpose in decoded.purposes_legitimate_interest
                and (vendor is None or vendor in decoded.vendor_legitimate_interests)
            )
            if not (consented or legitimate):
                return False
        return True
