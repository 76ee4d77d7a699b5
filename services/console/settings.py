"""Console settings (env prefix CONSOLE_; shared infrastructure settings also unprefixed)."""

from __future__ import annotations

from pydantic import Field, PositiveFloat, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.clients.lwa import LWA_AUTHORIZE_URLS, LwaRegion
from shared.config import LwaAppSettings, ServiceSettings


class ConsoleSettings(ServiceSettings, LwaAppSettings):
    model_config = SettingsConfigDict(env_prefix="CONSOLE_", extra="ignore", populate_by_name=True)

    service_name: str = "console"
    # Where the management APIs answer. The console holds API_KEY (shared with the services)
    # and sends it from the server only; a browser never sees it.
    token_url: str = "http://127.0.0.1:8081"
    poller_url: str = "http://127.0.0.1:8082"
    scheduler_url: str = "http://127.0.0.1:8083"
    collector_url: str = "http://127.0.0.1:8084"
    notifier_url: str = "http://127.0.0.1:8085"
    api_timeout_s: PositiveFloat = 10.0
    session_secret: SecretStr | None = Field(
        default=None,
        description="Signs session cookies; unset: derived from API_KEY (same on every replica)",
    )
    session_hours: PositiveFloat = Field(12.0, description="A sign-in lasts this long")
    secure_cookies: bool = Field(
        default=False, description="Mark cookies Secure (set behind HTTPS, as in production)"
    )
    trusted_user_header: str | None = Field(
        default=None,
        description="Header an SSO proxy sets to the signed-in user's name (e.g. "
        "X-Forwarded-User). Off by default: only set it when every request passes that proxy",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8086",
        description="The console's address as browsers reach it (LWA's redirect_uri is built "
        "from it)",
    )
    lwa_authorize_url: str = Field(
        default=LWA_AUTHORIZE_URLS[LwaRegion.NA],
        description="Login with Amazon's authorization URL for users in North America (NA)",
    )
    lwa_authorize_url_eu: str = Field(
        default=LWA_AUTHORIZE_URLS[LwaRegion.EU],
        description="The same for users in Europe (EU)",
    )
    lwa_authorize_url_fe: str = Field(
        default=LWA_AUTHORIZE_URLS[LwaRegion.FE],
        description="The same for users in the Far East (FE)",
    )
    lwa_scope: str = "advertising::campaign_management"
    trace_url_template: str | None = Field(
        default=None,
        description="Link to a run's trace, e.g. http://jaeger:16686/search?service=amc-poller"
        "&tags=%7B%22amc.execution_id%22%3A%22{execution_id}%22%7D; {execution_id} is replaced",
    )
    page_size: int = Field(default=25, ge=1, le=200)

    @property
    def lwa_authorize_urls(self) -> dict[LwaRegion, str]:
        """Each region's authorization URL (Amazon's create-authorization-grant guide)."""
        return {
            LwaRegion.NA: self.lwa_authorize_url,
            LwaRegion.EU: self.lwa_authorize_url_eu,
            LwaRegion.FE: self.lwa_authorize_url_fe,
        }
