"""The instance registry as the background loops see it: a short per-replica cache of the
instances table, the AMC account a run is sent with, and the limits that apply to it.

A change made through the API reaches the other replicas within `ttl_s`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.poller.instances import registry
from services.poller.instances.registry import Instance, Region
from services.poller.settings import PollerSettings
from shared.clients import AmcAccount
from shared.contract import WorkflowRun

# AMC's API hosts by region (Amazon Ads API: North America, Europe, Far East).
REGION_HOSTS: dict[str, str] = {
    "NA": "https://advertising-api.amazon.com",
    "EU": "https://advertising-api-eu.amazon.com",
    "FE": "https://advertising-api-fe.amazon.com",
}


class UnknownInstanceError(LookupError):
    """A run names an instance the registry does not have and gives no account ids."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(
            f"AMC instance {instance_id} is not registered: register it (amcctl instances add "
            f"{instance_id} ...) or send advertiser_id and marketplace_id with the run"
        )


@dataclass(frozen=True)
class Target:
    """An instance as one unit of work (a submission, a poll, a download, a cancel) sees it,
    resolved once: where its calls go and the limits that apply to them."""

    account: AmcAccount
    sandbox: bool
    requests_per_second: float


class InstanceDirectory:
    def __init__(
        self, pool: asyncpg.Pool[Any], settings: PollerSettings, ttl_s: float = 10.0
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Instance | None]] = {}

    async def get(self, instance_id: str, *, fresh: bool = False) -> Instance | None:
        now = time.monotonic()
        cached = self._cache.get(instance_id)
        if cached is not None and cached[0] > now and not fresh:
            return cached[1]
        async with self._pool.acquire() as conn:
            found = await registry.get_instance(conn, instance_id)
        self._cache[instance_id] = (now + self._ttl_s, found)
        return found

    def forget(self, instance_id: str) -> None:
        self._cache.pop(instance_id, None)

    def region_url(self, region: Region) -> str:
        """POLLER_AMC_REGION_URLS first; North America falls back to POLLER_AMC_BASE_URL."""
        configured = self._settings.amc_region_urls.get(region)
        if configured:
            return configured
        return self._settings.amc_base_url if region == "NA" else REGION_HOSTS[region]

    async def resolve(self, run: WorkflowRun) -> Target:
        """The run's instance, looked up once (raises UnknownInstanceError)."""
        instance = await self.get(run.instance_id)
        if instance is None and (run.advertiser_id is None or run.marketplace_id is None):
            # Registered a moment ago, maybe through another replica: look again.
            instance = await self.get(run.instance_id, fresh=True)
        return Target(
            account=self._account(run, instance),
            sandbox=instance is not None and instance.sandbox,
            requests_per_second=self._rate(instance),
        )

    def target_of(self, instance: Instance) -> Target:
        """A registered instance as a unit of work outside a run (workflow management) sees it."""
        return Target(
            account=self.account_of(instance),
            sandbox=instance.sandbox,
            requests_per_second=self._rate(instance),
        )

    async def account(self, run: WorkflowRun) -> AmcAccount:
        return (await self.resolve(run)).account

    def _account(self, run: WorkflowRun, instance: Instance | None) -> AmcAccount:
        advertiser, marketplace = run.advertiser_id, run.marketplace_id
        if advertiser is None or marketplace is None:
            if instance is None:
                raise UnknownInstanceError(run.instance_id)
            return self.account_of(instance)
        region: Region = instance.region if instance is not None else "NA"
        return AmcAccount(run.instance_id, advertiser, marketplace, self.region_url(region))

    def account_of(self, instance: Instance) -> AmcAccount:
        return AmcAccount(
            instance.instance_id,
            instance.advertiser_id,
            instance.marketplace_id,
            self.region_url(instance.region),
        )

    async def sandbox(self, instance_id: str) -> bool:
        instance = await self.get(instance_id)
        return instance is not None and instance.sandbox

    async def max_running(self, instance_id: str) -> int:
        instance = await self.get(instance_id)
        if instance is not None and instance.max_running is not None:
            return instance.max_running
        return self._settings.max_running_per_instance

    async def daily_cap(self, instance_id: str) -> int:
        """Executions the instance may be given per UTC day; 0 for no cap."""
        instance = await self.get(instance_id)
        if instance is not None and instance.max_daily_executions is not None:
            return instance.max_daily_executions
        return self._settings.daily_executions_per_instance

    async def requests_per_second(self, instance_id: str) -> float:
        return self._rate(await self.get(instance_id))

    def _rate(self, instance: Instance | None) -> float:
        if instance is not None and instance.requests_per_second is not None:
            return instance.requests_per_second
        return self._settings.requests_per_second_per_instance
