"""Request and response models of POST /v1/decisions; the OpenAPI document is generated from them."""

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from adserve.core.identifiers import CountryCode, Identifier, ShortText, Slug
from adserve.core.vocabulary import AgeBucket, ContentType, Device, Placement
from adserve.privacy.consent import ConsentIn, ServingMode

MAX_ADS_PER_DECISION = 10


class ListenerContext(BaseModel):
    """What the listener is doing right now."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    content_type: ContentType = ContentType.MUSIC
    genre: Slug | None = None
    local_hour: StrictInt | None = Field(
        default=None, ge=0, le=23, description="Hour of day where the listener is; UTC hour when absent."
    )


class Listener(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier
    country: CountryCode
    device: Device
    age_bucket: AgeBucket | None = None
    session_id: Identifier | None = Field(
        default=None, description="Scopes `session` frequency caps; without it the session is the UTC day."
    )
    context: ListenerContext = ListenerContext()

    def __repr__(self) -> str:
        """Without the listener's or session's id, as ``DecisionRequest``'s."""
        return f"Listener(country={self.country!r}, device={self.device.value!r})"

    __str__ = __repr__  # pydantic's __str__ lists every field, ids included


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    listener: Listener
    placement: Placement
    max_ads: StrictInt = Field(default=1, ge=1, le=MAX_ADS_PER_DECISION)
    exclude_ads: Annotated[list[Identifier], Field(max_length=100)] = []
    consent: ConsentIn | None = Field(
        default=None,
        description="What the listener allows; absent, the deployment's DEFAULT_CONSENT_POLICY decides.",
    )
    explain: StrictBool = Field(
        default=False,
        description=(
            "On POST /v1/decisions/explain (implied there; a 422 on POST /v1/decisions): explain the decision "
            "instead of serving it. The response lists every ad of the catalog with the first rule that removed it "
            "and each scored ad's feature contributions. Its ads carry no tracking URLs, so nothing is counted "
            "(impressions, caps, delivery, pacing); its decision record is flagged `explain` and training skips "
            "it. See docs/api.md#explain."
        ),
    )
    explain_campaign: Identifier | None = Field(
        default=None,
        description="On POST /v1/decisions/explain: list only this campaign's ads (the decision explained is the "
        "same). A 422 on POST /v1/decisions.",
    )

    def explained(self) -> "DecisionRequest":
        """This request as the explain route asks it."""
        return self if self.explain else self.model_copy(update={"explain": True})

    def __repr__(self) -> str:
        """Short, and without the listener's or session's id: whatever formats a request (a debug message, an
        error's message) must not name the listener (pydantic's own repr of a request took some 25 us and did)."""
        return f"DecisionRequest(placement={self.placement.value!r}, max_ads={self.max_ads}, explain={self.explain})"

    __str__ = __repr__  # pydantic's __str__ lists every field, the listener's ids included


class TrackingUrls(BaseModel):
    impression: str
    click: str
    complete: str
    skip: str


class CreativeView(BaseModel):
    format: str
    title: ShortText
    media_url: str
    click_url: str
    duration_seconds: int | None = None


class ServedAd(BaseModel):
    ad_id: str
    campaign_id: str
    advertiser_id: str
    creative: CreativeView
    score: float = Field(description="Predicted click-through rate.")
    propensity: float = Field(
        gt=0, le=1, description="Probability that the policy chose this ad at this rank, given the ads above it."
    )
    rank: int = Field(ge=1)
    tracking: TrackingUrls | None = Field(
        description="Beacon URLs with signed tokens; null on an explain response, whose ads are never played."
    )


class Rule(StrEnum):
    """Why an ad of the catalog was or was not served, in the order Decide applies them."""

    STATUS = "status"
    FLIGHT = "flight"
    CURRENCY = "currency"
    PLACEMENT = "placement"
    TARGETING = "targeting"
    EXCLUDED = "excluded"
    CONSENT = "consent"
    PACING = "pacing"
    FREQUENCY_CAP = "frequency_cap"
    PRERANK = "prerank"
    ADVERTISER_SEPARATION = "advertiser_separation"
    NOT_CHOSEN = "not_chosen"
    SERVED = "served"


class CapState(BaseModel):
    """A frequency cap in force and the listener's count in its current window."""

    window: str
    scope: str
    count: int
    max: int


class Contributions(BaseModel):
    """The factorization machine's logit, term by term: ``logit = bias + sum(fields) + sum(pairs)``."""

    bias: float
    fields: dict[str, float] = Field(description="The linear term of each field's value, by field name.")
    pairs: dict[str, float] = Field(description="The interaction of each field pair, keyed `field*field`.")
    logit: float = Field(description="The sum of the terms; the score is sigmoid(logit).")


class Scoring(BaseModel):
    score: float = Field(description="Predicted click-through rate, as served.")
    value_cpm: float = Field(
        description="The CPM the policy ranked with, in the ranking currency (RANKING_CURRENCY): the campaign's "
        "value_cpm times the exchange rate of its currency (the very value_cpm when priced in it)."
    )
    expected_value: float = Field(description="score x value_cpm: what the policy ranks by.")
    rank_probabilities: list[float] = Field(
        description="The policy's probability of this ad at each slot it filled, in rank order (0 once out of "
        "the pool); a served ad's propensity is the entry of its rank."
    )
    features: dict[str, str] = Field(description="The feature values the model saw, by field.")
    contributions: Contributions | None = Field(
        description="null when the model cannot be decomposed (see Explanation.contributions_unavailable)."
    )
    heard: int | None = Field(
        default=None,
        exclude_if=lambda heard: heard is None,
        description="With squarecb's optimism (ExplorationOptimism): the impressions of this ad the serving model "
        "learned from, which its exploration is measured by (0: never heard, explored as if it were the best). "
        "Absent otherwise.",
    )


class ExplainedAd(BaseModel):
    """One ad of the catalog and the first rule that removed it (or `served`), with what that rule saw."""

    ad_id: str
    campaign_id: str
    advertiser_id: str
    rule: Rule
    detail: str = Field(description="The rule's finding in words.")
    dimension: str | None = None
    listener_value: str | None = None
    targeted: list[str] | None = None
    cap: CapState | None = None
    serve_probability: float | None = None
    draw: float | None = None
    by_ad_id: str | None = Field(default=None, description="advertiser_separation: the higher-ranked ad chosen.")
    rank: int | None = None
    propensity: float | None = None
    scoring: Scoring | None = Field(default=None, description="For every ad that reached the model.")


class Explanation(BaseModel):
    ads: list[ExplainedAd] = Field(
        description="Every ad of the catalog (any status, any placement), by campaign id then catalog order, "
        "but those counted in omitted."
    )
    contributions_unavailable: str | None = Field(
        description="Why scored ads carry no contributions (the model is not a factorization machine adserve "
        "can read), or null when they do."
    )
    omitted: dict[Rule, int] = Field(
        description="Ads of the catalog not listed, by rule: empty unless the list would pass MAX_EXPLAINED_BYTES, "
        "when the ads of the earliest rules are left out first (see docs/api.md#explain)."
    )


class DecisionResponse(BaseModel):
    decision_id: str
    model_version: str
    mode: ServingMode = Field(
        description="personalised: the listener's own fields were used; contextual: only the moment's."
    )
    ads: list[ServedAd]
    explanation: Explanation | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Only on an explain request (absent otherwise).",
    )
