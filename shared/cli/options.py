"""CLI options declared once for the commands that share them. Above all the run-target
options (who runs what where, AMC's run options, parameters): `amcctl schedules create` and
`amcctl collections create` take the same options with the same checks, and `schedules
update` the same option types.

Typer builds a command's options from its signature; `option_group` puts a group of options
into a command's signature in place of one parameter, and hands the command what they make:
for `run_target_options`, the workflow-run fields (`workflow_run_fields`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from shared.cli.api import sql_text, workflow_parameters

# Options every command that names a workflow run takes (schedules and collections alike).
User = Annotated[str, typer.Option(help="User whose AMC token is used")]
Instance = Annotated[str, typer.Option(help="AMC instance id")]
Advertiser = Annotated[
    str | None,
    typer.Option(help="Advertiser id (with --marketplace; neither: the instance registry's)"),
]
Marketplace = Annotated[
    str | None,
    typer.Option(help="Marketplace id (with --advertiser; neither: the instance registry's)"),
]
Workflow = Annotated[str | None, typer.Option(help="Saved AMC workflow id (or --sql-file)")]
SqlFile = Annotated[
    Path | None,
    typer.Option(
        "--sql-file",
        help="Inline SQL for ad hoc runs, read from this file (or --workflow)",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]
OutputFormat = Annotated[str, typer.Option(help="CSV, AMC's only result format")]
Parameters = Annotated[str | None, typer.Option(help="Workflow parameters as a JSON object")]
Param = Annotated[list[str] | None, typer.Option(help="One workflow parameter, NAME=VALUE")]
# AMC's run options: unset ones are not sent, and AMC's defaults apply.
TimeoutS = Annotated[
    int | None,
    typer.Option(
        "--timeout-s",
        min=900,
        max=86_400,
        help="AMC's workflowExecutionTimeoutSeconds (900-86400)",
    ),
]
IgnoreDataGaps = Annotated[
    bool, typer.Option("--ignore-data-gaps", help="AMC's ignoreDataGaps: run despite data gaps")
]
RequireSyntheticData = Annotated[
    bool, typer.Option("--require-synthetic-data", help="AMC's requireSyntheticData")
]
DisableAggregationControls = Annotated[
    bool,
    typer.Option(
        "--disable-aggregation-controls",
        help="AMC's disableAggregationControls (sandbox instances only)",
    ),
]


@dataclass(frozen=True)
class RunOptionFlags:
    """The run-option flags of a command, as given."""

    timeout_s: int | None = None
    ignore_data_gaps: bool = False
    require_synthetic_data: bool = False
    disable_aggregation_controls: bool = False

    def options(self) -> dict[str, Any]:
        """AMC's run options the flags set; a flag not given leaves AMC's default."""
        chosen: dict[str, Any] = {
            "workflow_execution_timeout_s": self.timeout_s,
            "ignore_data_gaps": self.ignore_data_gaps or None,
            "require_synthetic_data": self.require_synthetic_data or None,
            "disable_aggregation_controls": self.disable_aggregation_controls or None,
        }
        return {k: v for k, v in chosen.items() if v is not None}


def workflow_run_fields(
    *,
    user: User,
    instance: Instance,
    advertiser: Advertiser = None,
    marketplace: Marketplace = None,
    workflow: Workflow = None,
    sql_file: SqlFile = None,
    timeout_s: TimeoutS = None,
    ignore_data_gaps: IgnoreDataGaps = False,
    require_synthetic_data: RequireSyntheticData = False,
    disable_aggregation_controls: DisableAggregationControls = False,
    output_format: OutputFormat = "CSV",
    parameters: Parameters = None,
    param: Param = None,
) -> dict[str, Any]:
    """The workflow-run part of a create request, from the options above. Refuses, naming
    the options, what the service would refuse: both or neither of --workflow and
    --sql-file, one of --advertiser and --marketplace without the other."""
    if (workflow is None) == (sql_file is None):
        raise typer.BadParameter(
            "give exactly one: a saved workflow (--workflow) or inline SQL (--sql-file)",
            param_hint="'--workflow' / '--sql-file'",
        )
    if (advertiser is None) != (marketplace is None):
        raise typer.BadParameter(
            "give both or neither (neither: the instance registry's)",
            param_hint="'--advertiser' / '--marketplace'",
        )
    fields: dict[str, Any] = {
        "user_id": user,
        "instance_id": instance,
        "output_format": output_format,
        "parameters": workflow_parameters(parameters, param or []),
    }
    if advertiser is not None:
        fields |= {"advertiser_id": advertiser, "marketplace_id": marketplace}
    if workflow is not None:
        fields["workflow_id"] = workflow
    if sql_file is not None:
        fields["sql_query"] = sql_text(sql_file)
    flags = RunOptionFlags(
        timeout_s, ignore_data_gaps, require_synthetic_data, disable_aggregation_controls
    )
    options = flags.options()
    if options:
        fields["options"] = options
    return fields


def option_group(
    parameter: str, declare: Callable[..., Any]
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A decorator: the options `declare` takes (keyword-only, annotated as Typer options)
    stand in the command's signature in place of its `parameter`, which receives what
    `declare` makes of them. Commands that share options declare them once this way."""
    options = inspect.signature(declare, eval_str=True).parameters

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = inspect.signature(command, eval_str=True)
        params: list[inspect.Parameter] = []
        for param in own.parameters.values():
            if param.name == parameter:
                params.extend(options.values())
            else:
                # Keyword-only, so options with and without defaults may stand in any order.
                params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))

        @functools.wraps(command)
        def with_group(**given: Any) -> None:
            chosen = {name: given.pop(name) for name in options}
            command(**given, **{parameter: declare(**chosen)})

        # Typer reads the options from the signature (inspect.signature takes a function's
        # __signature__ as it stands) and their types from the annotations.
        vars(with_group)["__signature__"] = own.replace(parameters=params)
        with_group.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
        return with_group

    return decorate


# The command's `target: dict[str, Any]` receives the workflow-run fields of a create
# request, refused, naming the options, as `workflow_run_fields` refuses them.
run_target_options = option_group("target", workflow_run_fields)
