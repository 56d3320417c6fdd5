"""Each function's configuration: read from the environment once, validated, cached.

Resource names have no defaults: a function deployed without them fails at start-up, not mid-request.
Tunables have documented defaults and bounds.
"""

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from adserve.campaigns.currencies import CurrencyCode, ExchangeRates, RatedCurrencyCode
from adserve.core.errors import ConfigurationError

ResourceName = Annotated[str, StringConstraints(min_length=1, max_length=2048)]

PacingMaxAgeSeconds = Annotated[
    float,
    Field(
        ge=120.0,
        le=3600.0,
        description="A budgeted campaign whose pacing state is older than this is not served (fail closed); the "
        "pacing step, which runs every minute, counts a state as served this long. At least two steps.",
    ),
]
"""One setting read by Decide, the pacing step and the delivery report (``PacingMaxAgeSeconds`` feeds all three): a
step that assumed a shorter or longer serving time than Decide's would misjudge a paused campaign's capacity, and a
report would say a campaign serves that Decide has stopped serving. The default is the
step's own ``PACING_MAX_AGE`` (a test ties them; importing it here would load the pacing model into every function)."""


def _comma_separated(value: object) -> object:
    """An environment variable's list: "1e-4,1e-3" (empty: none); anything else is left to the field's type."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


CommaSeparatedFloats = Annotated[tuple[float, ...], BeforeValidator(_comma_separated)]


def _unique_names(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object's members, refusing a name given twice (json.loads would keep the last one silently)."""
    members = dict(pairs)
    if len(members) < len(pairs):
        raise ValueError("a currency is given twice")
    return members


def _json_text(value: object) -> object:
    """An environment variable holding JSON text, read; anything else is left to the field's type."""
    if isinstance(value, str):
        return json.loads(value, object_pairs_hook=_unique_names)  # its ValueError is the field's
    return value


ExchangeRatesJson = Annotated[
    dict[RatedCurrencyCode, Annotated[float, Field(gt=0.0, allow_inf_nan=False, strict=True)]],
    BeforeValidator(_json_text),
]
"""A JSON object: what one unit of each currency is worth in the ranking currency (a number: 1e400 reads as
infinity and is refused, as is "1.08" or true)."""


class EnvironmentSettings(BaseModel):
    # Built on first use: a function builds only its own settings class, not the other five.
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        environ = os.environ if environ is None else environ
        values = {name: environ[name.upper()] for name in cls.model_fields if name.upper() in environ}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            missing = ", ".join(str(e["loc"][0]).upper() for e in error.errors())
            raise ConfigurationError(f"{cls.__name__}: invalid or missing environment variables: {missing}") from error


class RankingCurrencySettings(EnvironmentSettings):
    """The rates Decide ranks with and the pacing step paces by: a campaign without one is neither."""

    ranking_currency: CurrencyCode = Field(
        default="USD",
        description="The currency every ad's value_cpm is converted into to be ranked (campaigns/currencies.py).",
    )
    exchange_rates: ExchangeRatesJson = Field(
        default_factory=dict,
        description='What one unit of each other currency is worth in RANKING_CURRENCY, e.g. {"EUR": 1.08}: a '
        "campaign in a currency without a rate is neither served nor paced.",
    )

    @field_validator("exchange_rates")
    @classmethod
    def _other_currencies(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        """The ranking currency's rate is 1 by definition: a rate given for it is a mistake, whatever its value."""
        if info.data.get("ranking_currency") in value:
            raise ValueError("must not give a rate for RANKING_CURRENCY (its rate is 1)")
        return value

    @property
    def rates(self) -> ExchangeRates:
        return ExchangeRates(self.ranking_currency, self.exchange_rates)


class CampaignsSettings(EnvironmentSettings):
    campaigns_table_name: ResourceName
    delivery_table_name: ResourceName
    pacing_table_name: ResourceName
    pacing_max_age_seconds: PacingMaxAgeSeconds = 300.0


class ListenersSettings(EnvironmentSettings):
    frequency_caps_table_name: ResourceName
    logs_bucket_name: ResourceName
    pseudonym_key_secret_id: ResourceName
    pre_pseudonym_logs: bool = Field(
        default=False,
        description="Whether the logs may hold rows from before pseudonyms: erasure then records their unkeyed hash.",
    )


class DecideSettings(RankingCurrencySettings):
    campaigns_table_name: ResourceName
    pacing_table_name: ResourceName
    pacing_max_age_seconds: PacingMaxAgeSeconds = 300.0
    frequency_caps_table_name: ResourceName
    outcomes_queue_url: ResourceName
    logs_bucket_name: ResourceName
    """Where the catalog snapshots go (catalogs/<version>.json.gz) that compact decision records name."""
    signing_key_secret_id: ResourceName
    signing_key_adoption_seconds: float = Field(
        default=330.0,
        ge=0.0,
        le=3600.0,
        description="A rotated signing key signs once it is this old, the previous one until then: longer than "
        "Track's UNKNOWN_KEY_REFRESH_SECONDS (at most 300), so every Track environment can load it in time.",
    )
    pseudonym_key_secret_id: ResourceName
    default_consent_policy: Literal["strict", "legacy"] = Field(
        default="strict",
        description="What a request that says nothing about consent may do: strict nothing, legacy everything.",
    )
    tcf_vendor_id: int = Field(
        default=0,
        ge=0,
        le=65_535,
        description="The operator's IAB vendor id (0: none): a TCF string must then also give this vendor consent.",
    )
    model_dir: Path
    models_bucket_name: ResourceName
    model_pointer_check_seconds: float = Field(
        default=60.0, ge=5.0, le=3600.0, description="How often the active-model pointer is read, at most."
    )
    model_cache_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "adserve-models",
        description="Where downloaded models are unpacked before loading (Lambda's /tmp).",
    )
    exploration_policy: Literal["epsilon_greedy", "squarecb"] = Field(
        default="squarecb", description="How Decide explores (decisions/policy.py); logged with each decision."
    )
    exploration_epsilon: float = Field(default=0.1, ge=0.0, le=1.0, description="epsilon_greedy's random share.")
    exploration_gamma: float = Field(
        default=200.0,
        ge=0.0,
        le=1e6,
        description="squarecb's gamma (the cap with EXPLORATION_GAMMA_SCALE): higher explores less where sure.",
    )
    exploration_gamma_scale: float = Field(
        default=0.0,
        ge=0.0,
        le=1e4,
        description="squarecb's gamma per model: min(EXPLORATION_GAMMA, this x sqrt(its logged_decisions)); 0 off.",
    )
    exploration_optimism: float = Field(
        default=0.0,
        ge=0.0,
        le=100.0,
        description="squarecb's optimism: standard errors an ad's value may lie above its estimate, by the "
        "impressions of it the model learned from (its manifest's heard_ads); 0 off.",
    )
    token_ttl_seconds: int = Field(default=86_400, ge=60, le=7 * 86_400)
    prerank_top_k: int = Field(
        default=500,  # decisions.prerank.DEFAULT_TOP_K, not imported: every function reads these settings
        ge=10,
        le=100_000,
        description="Past this many eligible ads only the top K by value_cpm x prior are scored (decisions/prerank).",
    )
    catalog_ttl_seconds: float = Field(default=30.0, ge=0.0, le=3600.0)
    catalog_max_age_seconds: float = Field(
        default=300.0,
        gt=0.0,
        le=86_400.0,
        description="Past this age (every refresh failed since) the catalog serves no ad; above the TTL.",
        validate_default=True,  # a TTL set above the default max age is refused as well
    )
    cap_read_timeout_seconds: float = Field(
        default=0.3, gt=0.0, le=5.0, description="Read budget of the one caps Query; past it, fail closed."
    )
    decision_log_timeout_seconds: float = Field(
        default=0.25,
        gt=0.0,
        le=1.0,
        description="Connect and read budget of the one decision-record send (past it the record is lost).",
    )
    tracking_base_url: str | None = Field(
        default=None, description="Base of tracking URLs (a custom domain); the request's own host when unset."
    )

    @field_validator("catalog_max_age_seconds")
    @classmethod
    def _older_than_a_refresh(cls, value: float, info: ValidationInfo) -> float:
        """A max age within the TTL would expire the snapshot before its refresh is even attempted."""
        ttl = info.data.get("catalog_ttl_seconds")
        if ttl is not None and value <= ttl:
            raise ValueError("must be greater than CATALOG_TTL_SECONDS")
        return value


class TrackSettings(EnvironmentSettings):
    outcomes_queue_url: ResourceName
    signing_key_secret_id: ResourceName
    unknown_key_refresh_seconds: float = Field(
        default=10.0,
        ge=1.0,
        le=300.0,
        description="How soon the keys may be reloaded again for a token naming a key Track does not hold.",
    )


class RecordSettings(EnvironmentSettings):
    campaigns_table_name: ResourceName
    frequency_caps_table_name: ResourceName
    delivery_table_name: ResourceName
    logs_bucket_name: ResourceName
    catalog_ttl_seconds: float = Field(default=30.0, ge=0.0, le=3600.0)


class PacingSettings(RankingCurrencySettings):
    campaigns_table_name: ResourceName
    delivery_table_name: ResourceName
    pacing_table_name: ResourceName
    pacing_in_flight_steps: float = Field(
        default=2.0, ge=0.0, le=30.0, description="Steps of delivery served but not yet counted (pipeline lag)."
    )
    pacing_parallel_reads: int = Field(default=8, ge=1, le=64, description="Campaigns read at once.")
    pacing_max_age_seconds: PacingMaxAgeSeconds = 300.0


class RetrainSettings(EnvironmentSettings):
    logs_bucket_name: ResourceName
    models_bucket_name: ResourceName
    model_dir: Path = Field(description="The bootstrap model: the champion to beat before anything was promoted.")
    training_hours: int = Field(default=168, ge=1, le=24 * 90, description="Decisions of the last N hours.")
    reward_window_hours: float = Field(
        default=24.0,
        gt=0.0,
        le=24 * 7,
        validate_default=True,  # a TRAINING_HOURS set below the default window is refused as well
        description="Outcomes later than this count as none; below TRAINING_HOURS, which it is cut from.",
    )
    label: Literal["click", "complete"] = "click"
    weighting: Literal["none", "ips"] = "none"
    training_pairs: Literal["all", "with_listener"] = Field(
        default="all", description="with_listener: no pairs between two listener fields (TrainerConfig.pairs)."
    )
    training_refit_on_all: bool = Field(
        default=False,
        description="Publish the chosen recipe refitted on every row, holdout included (TrainerConfig.refit_on_all)",
    )
    training_cross_fit_folds: int = Field(
        default=0,
        ge=0,
        le=20,  # adserve.cli.models.MAX_CROSS_FIT_FOLDS
        description="Off-policy estimates on every decision, cut by time into this many folds each replayed by the "
        "recipe fitted on the others (TrainerConfig.cross_fit_folds); 0: on the holdout. Needs "
        "TRAINING_REFIT_ON_ALL=true.",
    )
    training_l2_factors_grid: CommaSeparatedFloats = Field(
        default=(),
        description="L2s on the factors to choose from by validation log loss, a fit each (e.g. 1e-4,1e-3); "
        "empty: the trainer's one default (TrainerConfig.l2_factors_grid).",
    )
    training_batch_size: int = Field(
        default=1024, ge=1, le=65536, description="Rows per Adagrad step of every fit (TrainingConfig.batch_size)."
    )
    min_rows: int = Field(default=1000, ge=1, le=100_000_000, description="Fewer examples: nothing is published.")
    min_positives: int = Field(
        default=20, ge=1, le=100_000_000, description="Fewer positives (clicks, or completions): nothing is published."
    )
    promotion_estimator: Literal["ips", "snips", "dr"] = "snips"
    promotion_margin: float = Field(default=0.02, ge=0.0, le=1.0)
    challenger_share: float | None = Field(
        default=None, gt=0.0, lt=1.0, description="A model that passes becomes the challenger with this share."
    )
    retrain_first_decisions: int = Field(
        default=0,
        ge=0,
        description="0: every run retrains. Above 0: a run retrains only when due (training.schedule): first at "
        "this many logged decisions, then each time they reach RETRAIN_GROWTH x the champion's.",
    )
    retrain_growth: float = Field(default=2.0, gt=1.0, le=100.0)
    retrain_max_interval_hours: float = Field(
        default=6.0, gt=0.0, le=24 * 7, description="A champion this old is retrained whatever the count."
    )

    @field_validator("training_cross_fit_folds")
    @classmethod
    def _folds_of_the_refit(cls, value: int, info: ValidationInfo) -> int:
        """The folds' fits stand for the model fitted on every row, which only the refit publishes; one fold would
        leave its fit nothing to learn from."""
        if value and (value < 2 or not info.data.get("training_refit_on_all")):
            raise ValueError("must be 0, or at least 2 with TRAINING_REFIT_ON_ALL=true")
        return value

    @field_validator("reward_window_hours")
    @classmethod
    def _within_the_training_hours(cls, value: float, info: ValidationInfo) -> float:
        """A scheduled retrain trains on the decisions of [now - TRAINING_HOURS, now - REWARD_WINDOW_HOURS]: a window
        as long as the training hours leaves nothing to train on, and every run is skipped."""
        hours = info.data.get("training_hours")
        if hours is not None and value >= hours:
            raise ValueError("must be less than TRAINING_HOURS")
        return value
