"""The run-target options (who runs what where, AMC's run options, parameters) declared once
for every CLI command that creates a workflow run: `amcctl schedules create` and
`amcctl collections create` take the same options with the same checks.

Typer builds a command's options from its signature; `option_group` puts a group of options
into a command's signature in place of one parameter, and hands the command what they make:
for `run_target_options`, the workflow-run fields (`workflow_run_fields`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from shared.cli.api import (
    Advertiser,
    DisableAggregationControls,
    IgnoreDataGaps,
    Instance,
    Marketplace,
    OutputFormat,
    Param,
    Parameters,
    RequireSyntheticData,
    RunOptionFlags,
    SqlFile,
    TimeoutS,
    User,
    Workflow,
    workflow_run_fields,
)


def _run_target(
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
    return workflow_run_fields(
        user=user,
        instance=instance,
        advertiser=advertiser,
        marketplace=marketplace,
        workflow=workflow,
        output_format=output_format,
        parameters=parameters,
        param=param,
        sql_file=sql_file,
        flags=RunOptionFlags(
            timeout_s, ignore_data_gaps, require_synthetic_data, disable_aggregation_controls
        ),
    )


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
run_target_options = option_group("target", _run_target)
