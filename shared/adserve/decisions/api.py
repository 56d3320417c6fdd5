"""Request and response models of POST /v1/decisions; the OpenAPI document is generated from them."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from adserve.core.identifiers import CountryCode, Identifier, ShortText, Slug
from adserve.core.vocabulary import AgeBucket, ContentType, Device, Placement
from adserve.privacy.consent import ConsentIn, ServingMode

MAX_ADS_PER_DECISION = 10


class ListenerContext(BaseModel):
    """What the listener is doing right now."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    content_type: ContentType = ContentType.MUSIC
    genre: Slug | None = None
    local_hour: int | None = Field(
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


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    listener: Listener
    placement: Placement
    max_ads: int = Field(default=1, ge=1, le=MAX_ADS_PER_DECISION)
    exclude_ads: Annotated[list[Identifier], Field(max_length=100)] = []
    consent: ConsentIn | None = Field(
        default=None,
        description="What the listener allows; absent, the deployment's DEFAULT_CONSENT_POLICY decides.",
    )


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
    tracking: TrackingUrls


class DecisionResponse(BaseModel):
    decision_id: str
    model_version: str
    mode: ServingMode = Field(
        description="personalised: the listener's own fields were used; contextual: only the moment's."
    )
    ads: list[ServedAd]
