"""The compose file and the Dockerfile, checked structurally (no Docker engine is needed:
these machines have none, so the stack itself is not started here)."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from typing import Any

import pytest

from shared.contract import ALL_EVENTS
from tests.unit.deploy.render import DEPLOY, ROOT, SERVICES, Obj, load_file

COMPOSE = DEPLOY / "compose" / "compose.yaml"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def compose() -> Obj:
    (doc,) = load_file(COMPOSE)
    return doc


def depends(service: Obj) -> dict[str, str]:
    raw: Any = service.get("depends_on", {})
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def compose_errors(doc: Obj) -> list[str]:
    errors = []
    services: dict[str, Obj] = doc.get("services", {})
    dockerfile_stages = {s for s, _ in stages()}
    for name, svc in services.items():
        if "image" not in svc and "build" not in svc:
            errors.append(f"{name}: needs image or build")
        build = svc.get("build")
        if isinstance(build, dict) and build.get("target", "runtime") not in dockerfile_stages:
            errors.append(f"{name}: build target {build.get('target')} is not a Dockerfile stage")
        for dep, condition in depends(svc).items():
            if dep not in services:
                errors.append(f"{name}: depends_on unknown service {dep}")
            elif condition not in CONDITIONS:
                errors.append(f"{name}: depends_on {dep}: unknown condition {condition}")
            elif condition == "service_healthy" and "healthcheck" not in services[dep]:
                errors.append(f"{name}: waits for {dep} to be healthy, but it has no healthcheck")
            elif (
                condition == "service_completed_successfully"
                and services[dep].get("restart", "no") != "no"
            ):
                errors.append(f"{name}: waits for one-shot {dep}, which restarts")
    host_ports = [str(p).split(":")[0] for svc in services.values() for p in svc.get("ports", [])]
    if len(host_ports) != len(set(host_ports)):
        errors.append(f"host ports clash: {sorted(host_ports)}")
    return errors


def test_compose_structure() -> None:
    doc = compose()
    assert compose_errors(doc) == []
    services = doc["services"]
    for service in SERVICES:
        svc = services[service]
        assert svc["command"] == [f"amc-{service}"]
        assert "healthcheck" in svc
        assert depends(svc)["migrate"] == "service_completed_successfully"
        assert depends(svc)["kafka-init"] == "service_completed_successfully"
        env = svc["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"].startswith("kafka:")
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
        assert str(env[f"{service.upper()}_HTTP_PORT"]) == "8080"
    assert services["migrate"]["command"] == ["amc-migrate"]
    assert depends(services["migrate"])["postgres"] == "service_healthy"
    assert services["simulator"]["build"]["target"] == "simulator"


def test_compose_kafka_is_kraft_and_creates_every_topic() -> None:
    services = compose()["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    topics = services["kafka-init"]["environment"]["TOPICS"].split()
    expected = {t for e in ALL_EVENTS for t in (e.topic, f"{e.topic}.dlq")}
    assert sorted(topics) == sorted(expected)


def test_compose_check_catches_broken_files() -> None:
    doc = compose()
    broken = {"services": {**doc["services"], "token": {"command": ["amc-token"]}}}
    assert compose_errors(broken)
    dangling = dict(doc["services"]["poller"])
    dangling["depends_on"] = {"kafak": {"condition": "service_healthy"}}
    assert compose_errors({"services": {**doc["services"], "poller": dangling}})


# --- Dockerfile -----------------------------------------------------------------------------


def stages() -> list[tuple[str, list[str]]]:
    """(stage name, instruction lines) per FROM, with continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            match = re.search(r"\s+AS\s+(\S+)", line, re.I)
            found.append((match.group(1) if match else str(len(found)), [line]))
        elif found:
            found[-1][1].append(line)
    return found


def test_dockerfile_is_multi_stage_non_root_with_product_last() -> None:
    all_stages = stages()
    names = [name for name, _ in all_stages]
    assert names[0] == "builder", names
    assert names[-1] == "runtime", "the product image must be the default (last) target"
    assert "simulator" in names
    builder = dict(all_stages)["builder"]
    assert any("pip wheel" in line for line in builder)
    for name in ("runtime", "simulator"):
        users = [line.split()[1] for line in dict(all_stages)[name] if line.startswith("USER ")]
        assert users, f"{name} must drop root"
        assert users[-1].split(":")[0] not in ("0", "root")
    product = [line for n, lines in all_stages if n != "simulator" for line in lines]
    assert not any("amclocal" in line and line.startswith("COPY") for line in product), (
        "the simulator must stay out of the product image"
    )


def test_entry_points_exist_in_pyproject() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name in [f"amc-{s}" for s in SERVICES] + ["amc-migrate", "amcctl"]:
        assert name in scripts


@pytest.mark.parametrize("path", ["pyproject.toml", "shared/config.py", "services/__init__.py"])
def test_dockerignore_keeps_what_the_image_copies(path: str) -> None:
    assert not ignored(path)


@pytest.mark.parametrize("path", [".venv/bin/python", ".git/HEAD", "tests/conftest.py", "var/x"])
def test_dockerignore_drops_local_state(path: str) -> None:
    assert ignored(path)


def ignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches a parent dir."""
    result = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").rstrip("/")
        parts = path.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(_match(pattern, c) for c in candidates):
            result = not negate
    return result


def _match(pattern: str, path: str) -> bool:
    if pattern == "**":
        return True
    if pattern.startswith("**/"):
        return any(fnmatch.fnmatchcase(seg, pattern[3:]) for seg in path.split("/"))
    return fnmatch.fnmatchcase(path, pattern)
