"""The `amcctl` root command: every service's command group, imported explicitly.

It lives here, above the services, because it is the one place that names them all; `shared/`
stays below every service. A group that fails to import fails `amcctl` (and its tests) loudly
rather than vanishing from the help.
"""

from __future__ import annotations

import typer

from services.collector.cli import app as collections
from services.console.cli import app as dlq
from services.notifier.cli import app as notifications
from services.poller.cli import app as executions
from services.poller.instances.cli import app as instances
from services.poller.workflows.cli import app as workflows
from services.scheduler.cli import app as schedules
from services.token.cli import app as tokens
from shared.crypto import KeyRing

app = typer.Typer(help="Operate the AMC background services.", no_args_is_help=True)
keys = typer.Typer(help="Fernet keys for token encryption.", no_args_is_help=True)
app.add_typer(keys, name="keys")


@keys.command("generate")
def generate_key() -> None:
    """Print a new Fernet key (put it first in the key list to start using it)."""
    typer.echo(KeyRing.generate_key())


app.add_typer(schedules, name="schedules")
app.add_typer(executions, name="executions")
app.add_typer(instances, name="instances")
app.add_typer(workflows, name="workflows")
app.add_typer(tokens, name="tokens")
app.add_typer(collections, name="collections")
app.add_typer(notifications, name="notifications")
app.add_typer(dlq, name="dlq")
