"""Each function's configuration: read from the environment once, validated, cached.

Resource names have no defaults: a function deployed without them fails at start-up, not mid-request.
Tunables have documented defaults and bounds.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from adserve.errors import ConfigurationError

ResourceName = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class EnvironmentSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        environ = os.environ if environ is None else environ
        values = {name: environ[name.upper()] for name in cls.model_fields if name.upper() in environ}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            missing = ", ".join(str(e["loc"][0]).upper() for e in error.errors())
            raise ConfigurationError(f"{cls.__name__}: invalid or missing environment variables: {missing}") from error


class CampaignsSettings(EnvironmentSettings):
    campaigns_table_name: ResourceName


class DecideSettings(EnvironmentSettings):
    campaigns_table_name: ResourceName
    frequency_caps_table_name: ResourceName
    outcomes_queue_url: ResourceName
    signing_key_secret_id: ResourceName
    model_dir: Path
    exploration_epsilon: float = Field(default=0.1, ge=0.0, le=1.0)
    token_ttl_seconds: int = Field(default=86_400, ge=60, le=7 * 86_400)
    catalog_ttl_seconds: float = Field(default=30.0, ge=0.0, le=3600.0)
    cap_read_timeout_seconds: float = Field(
        default=0.3, gt=0.0, le=5.0, description="Read budget of the one caps Query; past it, fail closed."
    )
    tracking_base_url: str | None = Field(
        default=None, description="Base of tracking URLs (a custom domain); the request's own host when unset."
    )


class TrackSettings(EnvironmentSettings):
    outcomes_queue_url: ResourceName
    signing_key_secret_id: ResourceName


class RecordSettings(EnvironmentSettings):
    campaigns_table_name: ResourceName
    frequency_caps_table_name: ResourceName
    logs_bucket_name: ResourceName
    catalog_ttl_seconds: float = Field(default=30.0, ge=0.0, le=3600.0)
