"""The run-target options (who runs what where, AMC's run options, parameters) declared once
for every CLI command that creates a workflow run: `amcctl schedules create` and
`amcctl collections create` take the same options with the same checks.

Typer builds a command's options from its signature; `run_target_options` puts these options
into the command's signature in place of its `target` parameter, and hands the command the
workflow-run fields they make (`workflow_run_fields`).
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


def run_target_options(command: Callable[..., None]) -> Callable[..., None]:
    """The command with the run-target options in place of its `target` parameter, which
    receives the workflow-run fields of a create request (refused, naming the options, as
    `workflow_run_fields` refuses them)."""
    own = inspect.signature(command, eval_str=True)
    options = inspect.signature(_run_target, eval_str=True).parameters
    params: list[inspect.Parameter] = []
    for param in own.parameters.values():
        if param.name == "target":
            params.extend(options.values())
        else:
            # Keyword-only, so options with and without defaults may stand in any order.
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def with_target(**given: Any) -> None:
        chosen = {name: given.pop(name) for name in options}
        command(**given, target=_run_target(**chosen))

    # Typer reads the options from the signature (inspect.signature takes a function's
    # __signature__ as it stands) and their types from the annotations.
    vars(with_target)["__signature__"] = own.replace(parameters=params)
    with_target.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    return with_target
