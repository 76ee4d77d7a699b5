"""A real HTTP simulator of Login with Amazon and the AMC reporting API.

Run it with `python -m amclocal.simulator --port N`, or in a test's event loop with
`run_simulator(config)`; drive it through /_sim/* (see SimControl).
"""

from amclocal.simulator.app import create_app
from amclocal.simulator.config import FaultRule, RouteKind, SimConfig, WorkflowBehavior
from amclocal.simulator.control import SimAccount, SimControl
from amclocal.simulator.executions import ExecutionView
from amclocal.simulator.requestlog import InstanceStats, RequestRecord, Stats
from amclocal.simulator.server import RunningSimulator, run_simulator

__all__ = [
    "ExecutionView",
    "FaultRule",
    "InstanceStats",
    "RequestRecord",
    "RouteKind",
    "RunningSimulator",
    "SimAccount",
    "SimConfig",
    "SimControl",
    "Stats",
    "WorkflowBehavior",
    "create_app",
    "run_simulator",
]
