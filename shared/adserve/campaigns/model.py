"""Campaigns: what an advertiser buys (targeting, caps, creatives, value) and the rules a valid one keeps."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final, Self

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from adserve.campaigns.currencies import CurrencyCode, StoredCurrencyCode
from adserve.core.identifiers import CountryCode, DateTimeText, Identifier, ShortText, Slug
from adserve.core.vocabulary import PLAYS, AgeBucket, ContentType, CreativeFormat, Device, Placement


class CampaignStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


class CapWindow(StrEnum):
    SESSION = "session"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    LIFETIME = "lifetime"


class CapScope(StrEnum):
    """Whom a cap counts: impressions of this campaign, or of every campaign of its advertiser."""

    CAMPAIGN = "campaign"
    ADVERTISER = "advertiser"


class FrequencyCap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max: int = Field(ge=1, le=10_000, description="Impressions allowed per listener within the window.")
    window: CapWindow
    scope: CapScope = CapScope.CAMPAIGN


class BudgetUnit(StrEnum):
    IMPRESSIONS = "impressions"
    SPEND = "spend"
    """Money in the campaign's currency: each impression spends value_cpm / 1000."""


class Pacing(StrEnum):
    """How the pacing step spreads a budget: evenly over the flight (and each day), or as fast as it sells."""

    EVEN = "even"
    ASAP = "asap"


MICROS_PER_UNIT: Final = 1_000_000
"""Spend is counted and compared in integer micro-units of the currency, so counters never drift."""

Amount = Annotated[float, Field(gt=0, le=1e12)]
StrictAmount = Annotated[float, Field(gt=0, le=1e12, strict=True)]


class Budget(BaseModel):
    """What a campaign may deliver in total and per UTC day; at least one of the two."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: BudgetUnit
    lifetime: Amount | None = Field(default=None, description="Over the whole flight.")
    daily: Amount | None = Field(default=None, description="Per UTC calendar day.")

    @field_validator("lifetime", "daily")
    @classmethod
    def _countable(cls, amount: float | None, info: ValidationInfo) -> float | None:
        """A spend amount under a micro-unit is counted in whole micro-units: under half of one it is 0 units,
        exhausted before its first impression. A field's own check, so the 422 names the amount."""
        if amount is not None and info.data.get("unit") is BudgetUnit.SPEND and amount * MICROS_PER_UNIT < 1:
            raise ValueError("a budget amount must be at least one micro-unit of the currency (0.000001)")
        return amount

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.lifetime is None and self.daily is None:
            raise ValueError("a budget needs a lifetime or a daily amount, or both")
        if self.lifetime is not None and self.daily is not None and self.daily > self.lifetime:
            raise ValueError("the daily amount must not exceed the lifetime amount")
        if self.unit is BudgetUnit.IMPRESSIONS and any(
            amount is not None and not float(amount).is_integer() for amount in (self.lifetime, self.daily)
        ):
            raise ValueError("an impressions budget counts whole impressions")
        return self

    @staticmethod
    def units(amount: float, unit: BudgetUnit) -> int:
        """An amount in the counters' integer units: impressions, or micro-units of the currency."""
        return round(amount) if unit is BudgetUnit.IMPRESSIONS else round(amount * MICROS_PER_UNIT)

    @property
    def lifetime_units(self) -> int | None:
        return None if self.lifetime is None else self.units(self.lifetime, self.unit)

    @property
    def daily_units(self) -> int | None:
        return None if self.daily is None else self.units(self.daily, self.unit)


class BudgetInput(Budget):
    """A budget as a write gives it: its amounts JSON numbers, never ``true`` or ``"100"`` (which lax
    validation would read as 1 and 100). Stored budgets stay readable as ``Budget``."""

    lifetime: StrictAmount | None = Field(default=None, description="Over the whole flight.")
    daily: StrictAmount | None = Field(default=None, description="Per UTC calendar day.")

    @field_validator("lifetime", "daily")
    @classmethod
    def _whole_micro_units(cls, amount: float | None, info: ValidationInfo) -> float | None:
        """A spend amount is counted in whole micro-units (``units``): a seventh decimal would be rounded, and the
        report show more left than the budget (1.5e-06 counted as 2 micro-units)."""
        if amount is not None and info.data.get("unit") is BudgetUnit.SPEND and round(amount, 6) != amount:
            raise ValueError("a spend amount has at most six decimals: it is counted in micro-units (0.000001)")
        return amount


class Targeting(BaseModel):
    """Who may hear the campaign. An empty list means 'anyone' for that dimension."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    countries: Annotated[list[CountryCode], Field(max_length=250)] = []
    devices: Annotated[list[Device], Field(max_length=len(Device))] = []
    age_buckets: Annotated[list[AgeBucket], Field(max_length=len(AgeBucket))] = []
    content_types: Annotated[list[ContentType], Field(max_length=len(ContentType))] = []
    genres: Annotated[list[Slug], Field(max_length=100)] = []
    hours: Annotated[list[Annotated[int, Field(ge=0, le=23)]], Field(max_length=24)] = Field(
        default=[], description="Listener-local hours of day (0-23) in which the campaign may run."
    )

    @field_validator("countries", "devices", "age_buckets", "content_types", "genres", "hours")
    @classmethod
    def _no_duplicates(cls, values: list[object]) -> list[object]:
        if len(set(values)) != len(values):
            raise ValueError("must not repeat a value")
        return values


class Creative(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ad_id: Identifier
    format: CreativeFormat
    title: ShortText
    media_url: AnyHttpUrl
    click_url: AnyHttpUrl
    duration_seconds: int | None = Field(default=None, ge=1, le=120)


MIN_VALUE_CPM: Final = 1000 / MICROS_PER_UNIT
"""0.001: one micro-unit of the currency an impression, the unit spend is counted in; below it spend rounds to 0."""


class Campaign(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    campaign_id: Identifier
    advertiser_id: Identifier
    name: ShortText
    status: CampaignStatus
    category: Slug = Field(description="Advertiser vertical, e.g. auto, food, finance; a model feature.")
    flight_start: datetime
    flight_end: datetime
    placements: Annotated[list[Placement], Field(min_length=1, max_length=len(Placement))]
    targeting: Targeting = Targeting()
    value_cpm: float = Field(gt=0, le=1000, description="What the advertiser pays per thousand impressions.")
    currency: StoredCurrencyCode = Field(default="USD", description="ISO 4217 code of value_cpm and a spend budget.")
    budget: Budget | None = None
    pacing: Pacing = Pacing.EVEN
    frequency_caps: Annotated[list[FrequencyCap], Field(max_length=12)] = []
    creatives: Annotated[list[Creative], Field(min_length=1, max_length=20)]

    @field_validator("flight_start", "flight_end")
    @classmethod
    def _timezone_aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a timezone, e.g. 2026-01-01T00:00:00Z")
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00: before year 1 in UTC
            raise ValueError("must fall within years 1-9999 in UTC") from None

    @field_validator("placements")
    @classmethod
    def _distinct_placements(cls, values: list[Placement]) -> list[Placement]:
        """Each placement once, in the order given: a campaign listed twice under one placement would sit twice
        in the catalog's index and be drawn twice as often as its logged propensity says."""
        return list(dict.fromkeys(values))

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.flight_end <= self.flight_start:
            raise ValueError("flight_end must be after flight_start")
        seen_caps = {(cap.scope, cap.window) for cap in self.frequency_caps}
        if len(seen_caps) != len(self.frequency_caps):
            raise ValueError("frequency_caps must not repeat a (scope, window) pair")
        ad_ids = [creative.ad_id for creative in self.creatives]
        if len(set(ad_ids)) != len(ad_ids):
            raise ValueError("creatives must have distinct ad_id values")
        return self

    @property
    def is_capped(self) -> bool:
        return bool(self.frequency_caps)

    @property
    def spend_micros_per_impression(self) -> int:
        """value_cpm / 1000 in micro-units of the currency (CPM 12.5 is 12,500 micros an impression)."""
        return round(self.value_cpm * MICROS_PER_UNIT / 1000)


MAX_DOCUMENT_BYTES: Final = 64 * 1024
"""A campaign as stored (its JSON) at most: a full page of the admin list must fit Lambda's response
(``campaigns.api.MAX_PAGE``). The PUT body's own limit is the same, but the URLs are stored normalised, where a
character such as ``<`` is percent-encoded into three."""


class FrequencyCapInput(FrequencyCap):
    """A cap as a write gives it: ``max`` a JSON integer, never ``true`` (lax validation reads it as 1)."""

    max: int = Field(ge=1, le=10_000, strict=True, description="Impressions allowed per listener within the window.")


class TargetingInput(Targeting):
    """Targeting as a write gives it: ``hours`` JSON integers, never ``true`` or ``"2"``."""

    hours: Annotated[list[Annotated[int, Field(ge=0, le=23, strict=True)]], Field(max_length=24)] = Field(
        default=[], description="Listener-local hours of day (0-23) in which the campaign may run."
    )


class CreativeInput(Creative):
    """A creative as a write gives it: ``duration_seconds`` a JSON integer, never ``"30"``."""

    duration_seconds: int | None = Field(default=None, ge=1, le=120, strict=True)


class CampaignInput(Campaign):
    """A campaign as a PUT or ``adserve campaigns load`` writes it: ``Campaign`` and the rules newer than some
    stored documents (numbers that are JSON numbers and dates that are strings among them). Those stay readable
    as ``Campaign``: a rule tightened on the stored model would drop them from the catalog, pacing and Record
    until someone replaced them."""

    flight_start: Annotated[datetime, DateTimeText]
    flight_end: Annotated[datetime, DateTimeText]
    # The stored model's items, held to a write's rules: lists of the narrower items (mypy: lists are invariant)
    targeting: TargetingInput = TargetingInput()
    frequency_caps: Annotated[list[FrequencyCapInput], Field(max_length=12)] = []  # type: ignore[assignment]
    creatives: Annotated[list[CreativeInput], Field(min_length=1, max_length=20)]  # type: ignore[assignment]
    budget: BudgetInput | None = None
    currency: CurrencyCode = Field(
        default="USD", description="ISO 4217 code of value_cpm and a spend budget: an active one."
    )
    value_cpm: float = Field(
        ge=MIN_VALUE_CPM,
        le=1000,
        strict=True,
        description=(
            "What the advertiser pays per thousand impressions: a whole number of micro-units an impression, so at "
            "least 0.001 and at most three decimals."
        ),
    )

    @field_validator("value_cpm")
    @classmethod
    def _whole_micros_per_impression(cls, value_cpm: float) -> float:
        """Spend is counted per impression in whole micro-units (``spend_micros_per_impression``): a fourth decimal
        would be rounded away on every impression (0.0015 billed as 0.002, a third more; 0.0025 as 0.002)."""
        per_impression = value_cpm * MICROS_PER_UNIT / 1000
        if abs(per_impression - round(per_impression)) > 1e-6:
            raise ValueError(
                f"value_cpm {value_cpm} has more than three decimals: each impression spends value_cpm / 1000 in "
                "whole micro-units of the currency"
            )
        return value_cpm

    @model_validator(mode="after")
    def _creatives_for_every_placement(self) -> Self:
        """A placement none of the campaign's creatives plays (``PLAYS``: an audio break plays audio) would be
        booked and never served."""
        formats = {creative.format for creative in self.creatives}
        unplayed = [placement.value for placement in self.placements if not formats & PLAYS[placement]]
        if unplayed:
            raise ValueError(
                "no creative plays in "
                + ", ".join(f"{p} (it plays {' or '.join(sorted(PLAYS[Placement(p)]))})" for p in unplayed)
            )
        return self

    @model_validator(mode="after")
    def _document_fits(self) -> Self:
        size = len(self.model_dump_json().encode())
        if size > MAX_DOCUMENT_BYTES:
            raise ValueError(
                f"the campaign is {size:,} bytes as stored (its URLs percent-encoded), over {MAX_DOCUMENT_BYTES:,}"
            )
        return self
