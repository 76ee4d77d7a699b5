"""dryRun on create execution, as Amazon's OpenAPI describes it: "the execution will be
processed but not submitted to compute, at which point the execution will be marked as
complete. This can be used to quickly validate workflow executions (e.g., the sqlQuery)
without consuming quotas or compute resources. The workflow execution will not generate
output results."

What the simulator can check of a workflow, each from Amazon's documents:
- a CUSTOM_PARAMETER the SQL references must be defined in inputParameters (OpenAPI,
  Workflow.inputParameters: "If workflow references a parameter not defined here the
  compilation fails");
- a parameter without a defaultValue needs a value in parameterValues (create-workflow.md,
  "If you do not specify the defaultValue, you must set the value later in the workflow
  executions");
- a workflow the test set up to fail (WorkflowBehavior.fail) fails its dry run with its reason.
Not published, so chosen here: the problem is answered as the execution ending FAILED with
the problem as its statusReason (the statuses the document lists), and the wording.
"""

from __future__ import annotations

import re
from typing import Any

from amclocal.simulator.config import WorkflowBehavior

_REFERENCE = re.compile(r"CUSTOM_PARAMETER\s*\(\s*'([^']*)'\s*\)", re.IGNORECASE)


def dry_run_problem(
    sql: str | None,
    parameters: list[dict[str, Any]],
    values: dict[str, str],
    behavior: WorkflowBehavior | None,
) -> str | None:
    """Why the workflow would not compile or run, or None when the dry run passes."""
    defined = {p["name"] for p in parameters}
    for name in _REFERENCE.findall(sql or ""):
        if name not in defined:
            return (
                f"Query compilation failed: CUSTOM_PARAMETER('{name}') references a "
                "parameter that is not defined in inputParameters"
            )
    for p in parameters:
        if "defaultValue" not in p and p["name"] not in values:
            return f"Parameter {p['name']} has no defaultValue and no value in parameterValues"
    if behavior is not None and behavior.fail:
        return behavior.failure_reason
    return None
