"""Token service settings (env prefix TOKEN_; shared infrastructure settings also unprefixed)."""

from __future__ import annotations

from pydantic import Field, NonNegativeFloat, PositiveFloat, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.clients.lwa import LWA_TOKEN_HOSTS, LwaRegion
from shared.config import Count, LwaAppSettings, RetrySettings, ServiceSettings
from shared.leases import renewal_interval


class TokenSettings(ServiceSettings, LwaAppSettings, RetrySettings):
    model_config = SettingsConfigDict(env_prefix="TOKEN_", extra="ignore", populate_by_name=True)

    service_name: str = "token"

    lwa_base_url: str = Field(
        default=LWA_TOKEN_HOSTS[LwaRegion.NA],
        description="LWA token host of users registered in North America (NA)",
    )
    lwa_base_url_eu: str = Field(
        default=LWA_TOKEN_HOSTS[LwaRegion.EU],
        description="LWA token host of users registered in Europe (EU)",
    )
    lwa_base_url_fe: str = Field(
        default=LWA_TOKEN_HOSTS[LwaRegion.FE],
        description="LWA token host of users registered in the Far East (FE)",
    )
    lwa_client_secret: SecretStr = Field(default=SecretStr(""), description="LWA app secret")
    lwa_timeout_s: PositiveFloat = Field(10.0, description="Timeout of one LWA call")

    encryption_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Comma-separated Fernet keys for stored tokens; the first encrypts",
    )
    event_encryption_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Comma-separated Fernet keys shared with the poller (token.refreshed)",
    )

    refresh_interval_s: PositiveFloat = Field(600.0, description="Proactive cycle period")
    refresh_initial_delay_s: NonNegativeFloat = Field(
        0.0, description="Wait before the first cycle after start"
    )
    refresh_buffer_s: NonNegativeFloat = Field(
        600.0,
        description="Refresh tokens expiring within this; a token with more life left is "
        "re-published instead of refreshed on request",
    )
    concurrency: Count = Field(50, description="LWA calls in flight per replica")
    claim_lease_s: PositiveFloat = Field(
        10.0,
        description="How long a replica's claim on a token lasts unless renewed: frees the "
        "claims of a replica that lives but stalls (a replica that died loses its claims at "
        "once, with its database session's owner lock)",
    )
    claim_renew_s: float | None = Field(
        default=None,
        gt=0,
        description="How often a replica renews its claims while their LWA calls run; at most "
        "a third of claim_lease_s (default: a quarter of it)",
    )
    on_demand_poll_s: PositiveFloat = Field(
        1.0, description="Fallback poll for requested refreshes (NOTIFY wakes too)"
    )
    failure_threshold: Count = Field(
        5, description="Failures in a row before token.refresh_failed is sent"
    )
    rotate_batch_size: Count = Field(500, description="Rows per key-rotation batch")

    @model_validator(mode="after")
    def _renewal(self) -> TokenSettings:
        _ = self.claim_renew_interval_s  # raises, naming the setting, when too close to the lease
        return self

    @property
    def lwa_base_urls(self) -> dict[LwaRegion, str]:
        """Each region's token host (Amazon's retrieve-access-token guide names one each)."""
        return {
            LwaRegion.NA: self.lwa_base_url,
            LwaRegion.EU: self.lwa_base_url_eu,
            LwaRegion.FE: self.lwa_base_url_fe,
        }

    @property
    def claim_renew_interval_s(self) -> float:
        return renewal_interval(
            self.claim_lease_s,
            self.claim_renew_s,
            lease_name="TOKEN_CLAIM_LEASE_S",
            renew_name="TOKEN_CLAIM_RENEW_S",
        )
