"""Every service's settings, as operators set them: env var name, type, default, bounds.

Pinned in settings_env_names.txt so a refactor of the settings classes (shared mixins, moved
fields) is proven to keep every variable an operator may have set, with its default. A
deliberate change to a setting updates that file in the same commit.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings

from services.collector.settings import CollectorSettings
from services.console.settings import ConsoleSettings
from services.notifier.settings import NotifierSettings
from services.poller.settings import PollerSettings
from services.scheduler.settings import SchedulerSettings
from services.token.settings import TokenSettings
from shared.config import SHARED_UNPREFIXED, KafkaSettings

PINNED = Path(__file__).with_name("settings_env_names.txt")

SETTINGS: tuple[type[BaseSettings], ...] = (
    KafkaSettings,
    CollectorSettings,
    ConsoleSettings,
    NotifierSettings,
    PollerSettings,
    SchedulerSettings,
    TokenSettings,
)


def env_lines(settings: type[BaseSettings]) -> list[str]:
    prefix = settings.model_config.get("env_prefix", "")
    lines = []
    for name, info in settings.model_fields.items():
        assert info.validation_alias is None, name
        assert info.alias is None, name
        # A factory is named, not called: KafkaSettings' would read this process's env.
        factory = info.default_factory
        default = info.default if factory is None else f"{getattr(factory, '__name__', factory)}()"
        names = [f"{prefix}{name}".upper()]
        if name in SHARED_UNPREFIXED and prefix != "KAFKA_":
            names.append(name.upper())
        lines.append(f"{' | '.join(names)}: {info.annotation!r} = {default!r} {info.metadata!r}")
    return sorted(lines)


def snapshot() -> str:
    return "".join(
        f"[{settings.__name__}]\n" + "".join(f"{line}\n" for line in env_lines(settings))
        for settings in SETTINGS
    )


def test_env_var_names_and_defaults_are_the_pinned_ones() -> None:
    assert snapshot() == PINNED.read_text()
