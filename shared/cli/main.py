"""The `amcctl` root command; each service's `cli.py` adds its group here."""

from __future__ import annotations

import importlib

import typer

from shared.crypto import KeyRing

app = typer.Typer(help="Operate the AMC background services.", no_args_is_help=True)
keys = typer.Typer(help="Fernet keys for token encryption.", no_args_is_help=True)
app.add_typer(keys, name="keys")


@keys.command("generate")
def generate_key() -> None:
    """Print a new Fernet key (put it first in the key list to start using it)."""
    typer.echo(KeyRing.generate_key())


# Service command groups: (module, group name). A module that is absent is skipped so the
# CLI still works in a partial checkout.
_GROUPS = (
    ("services.scheduler.cli", "schedules"),
    ("services.poller.cli", "executions"),
    ("services.poller.cli_instances", "instances"),
    ("services.poller.cli_workflows", "workflows"),
    ("services.token.cli", "tokens"),
    ("services.collector.cli", "collections"),
    ("services.notifier.cli", "notifications"),
    ("services.console.cli", "dlq"),
)

for module_name, group in _GROUPS:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        continue
    app.add_typer(module.app, name=group)
