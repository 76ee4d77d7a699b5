"""Render the kustomize overlays offline and load YAML, for the deployment tests.

Rendering uses the real kustomize: the standalone `kustomize` binary when present, otherwise
the copy built into `kubectl` (`kubectl kustomize`, shipped on the project's machines). Both
work on local files only; neither touches a cluster.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
SERVICES = ("token", "poller", "scheduler", "collector", "notifier", "console")

Obj = dict[str, Any]


def kustomize_command() -> list[str] | None:
    if exe := shutil.which("kustomize"):
        return [exe, "build"]
    if exe := shutil.which("kubectl"):
        return [exe, "kustomize"]
    return None


def render(directory: Path) -> list[Obj]:
    command = kustomize_command()
    if command is None:
        raise RuntimeError("neither kustomize nor kubectl is on PATH")
    done = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"kustomize failed for {directory}:\n{done.stderr}")
    return load_all(done.stdout)


def load_all(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def load_file(path: Path) -> list[Obj]:
    return load_all(path.read_text())


def by_kind(objects: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}
