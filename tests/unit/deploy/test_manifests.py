"""The Kubernetes manifests: each overlay renders, every object passes the Kubernetes JSON
schema (kubernetes-validate, offline, strict: unknown fields fail), the custom resources pass
structural checks of their own, and the deployment rules of issue 7 hold for every service.
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from pydantic_settings import BaseSettings

from shared.config import SHARED_UNPREFIXED, KafkaSettings, ServiceSettings
from shared.contract import ALL_EVENTS
from tests.unit.deploy.render import (
    K8S,
    OVERLAYS,
    ROOT,
    SERVICES,
    Obj,
    by_kind,
    kustomize_command,
    load_file,
    render,
)

# The oldest Kubernetes minor the manifests promise to work on.
K8S_VERSION = "1.30"
# Custom resources: no schema in kubernetes-validate; checked structurally below.
CUSTOM_GROUPS = ("kafka.strimzi.io/", "monitoring.coreos.com/")
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
GRACEFUL_DEFAULT_S = 20.0

pytestmark = pytest.mark.skipif(
    kustomize_command() is None, reason="needs kustomize or kubectl (kubectl kustomize) on PATH"
)


@cache
def rendered(overlay: str) -> tuple[Obj, ...]:
    return tuple(render(K8S / "overlays" / overlay))


def objects(overlay: str) -> list[Obj]:
    return list(rendered(overlay))


def schema_errors(obj: Obj) -> list[str]:
    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return [f"{where}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{where}: {exc.message}"]
    return []


def container(deployment: Obj) -> Obj:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, deployment["metadata"]["name"]
    result: Obj = containers[0]
    return result


def env_of(c: Obj) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels + In/NotIn/Exists/DoesNotExist)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


# --- schema validation ---------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_passes_the_kubernetes_schema(overlay: str) -> None:
    builtin = [o for o in objects(overlay) if not o["apiVersion"].startswith(CUSTOM_GROUPS)]
    assert len(builtin) >= 15, "the overlay rendered suspiciously few objects"
    errors = [e for o in builtin for e in schema_errors(o)]
    assert errors == []


def test_schema_check_catches_a_broken_object() -> None:
    deployment = dict(by_kind(objects("dev"), "Deployment")["amc-token"])
    broken = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    assert schema_errors(broken)
    typo = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    assert schema_errors(typo), "strict mode must refuse unknown fields"


def test_secret_example_is_valid_and_holds_only_placeholders() -> None:
    (secret,) = load_file(K8S / "base" / "secret.example.yaml")
    assert schema_errors(secret) == []
    assert secret["metadata"]["name"] == "amc-secrets"
    for key, value in secret["stringData"].items():
        assert "REPLACE_ME" in value, f"{key} must be a placeholder, never a real secret"


def test_no_overlay_applies_the_secret_example() -> None:
    for overlay in OVERLAYS:
        assert by_kind(objects(overlay), "Secret") == {}, overlay


def test_every_secret_reference_names_a_key_of_the_example() -> None:
    (secret,) = load_file(K8S / "base" / "secret.example.yaml")
    keys = set(secret["stringData"])
    for overlay in OVERLAYS:
        objs = objects(overlay)
        workloads = [*by_kind(objs, "Deployment").values(), *by_kind(objs, "Job").values()]
        for workload in workloads:
            for c in workload["spec"]["template"]["spec"]["containers"]:
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["name"] == "amc-secrets"
                        assert ref["key"] in keys, (workload["metadata"]["name"], ref["key"])


# --- the services --------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_deployment_is_hardened_and_probed(overlay: str, service: str) -> None:
    deployment = by_kind(objects(overlay), "Deployment")[f"amc-{service}"]
    pod = deployment["spec"]["template"]["spec"]
    c = container(deployment)
    env = env_of(c)

    assert c["command"] == [f"amc-{service}"]
    assert c["image"].rsplit(":", 1)[0].endswith("amc-services")
    http = {p["name"]: p["containerPort"] for p in c["ports"]}["http"]
    assert env[f"{service.upper()}_HTTP_PORT"] == str(http)

    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] in ("http", http)

    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), kind

    # SIGTERM: the grace period must outlast the preStop pause plus the service's drain
    # (HTTP and then broker/background loops, each bounded by the graceful timeout).
    graceful = float(env.get(f"{service.upper()}_GRACEFUL_TIMEOUT_S", GRACEFUL_DEFAULT_S))
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pause = float(pre_stop[-1]) if pre_stop[:1] == ["sleep"] else 0.0
    assert pod["terminationGracePeriodSeconds"] > pause + 2 * graceful

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]  # noqa: S108 - the container's /tmp
    if service == "poller":
        result_dir = env["POLLER_RESULT_DIR"]
        assert result_dir in mounts, "the poller's result dir must be a writable volume"

    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(http)
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_service_pdb_and_network_policy_select_the_pods(overlay: str, service: str) -> None:
    objs = objects(overlay)
    deployment = by_kind(objs, "Deployment")[f"amc-{service}"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"], labels)

    svc = by_kind(objs, "Service")[f"amc-{service}"]
    assert selects({"matchLabels": svc["spec"]["selector"]}, labels)
    assert {p["targetPort"] for p in svc["spec"]["ports"]} == {"http"}

    pdb = by_kind(objs, "PodDisruptionBudget")[f"amc-{service}"]
    assert selects(pdb["spec"]["selector"], labels)
    # maxUnavailable keeps single-replica pods evictable; minAvailable would pin the node.
    assert pdb["spec"]["maxUnavailable"] == 1

    policies = [
        p
        for p in by_kind(objs, "NetworkPolicy").values()
        if selects(p["spec"]["podSelector"], labels)
    ]
    ingress = [r for p in policies for r in p["spec"].get("ingress", [])]
    assert ingress, "ingress must be restricted by a policy"
    assert {port["port"] for r in ingress for port in r["ports"]} == {8080}
    egress_ports = {
        port["port"] for p in policies for r in p["spec"].get("egress", []) for port in r["ports"]
    }
    assert {53, 9092, 5432} <= egress_ports
    # Only the token service and the poller call Amazon; the notifier reaches the channels
    # its rules name (HTTPS webhooks and SMTP), never link-local metadata addresses.
    assert (443 in egress_ports) == (service in ("token", "poller", "notifier"))
    assert ({25, 465, 587} <= egress_ports) == (service == "notifier"), "SMTP: notifier only"
    if service == "notifier":
        blocks = [
            peer["ipBlock"]
            for p in policies
            for r in p["spec"].get("egress", [])
            for peer in r.get("to", [])
            if "ipBlock" in peer
        ]
        assert blocks, "the notifier's egress names its address blocks"
        assert all("169.254.0.0/16" in b.get("except", []) for b in blocks)


def test_replica_counts_per_overlay() -> None:
    dev = by_kind(objects("dev"), "Deployment")
    prod = by_kind(objects("prod"), "Deployment")
    for service in SERVICES:
        assert dev[f"amc-{service}"]["spec"]["replicas"] == 1
        assert prod[f"amc-{service}"]["spec"]["replicas"] >= 2


def test_prod_limits_are_higher_than_dev() -> None:
    def mem_mi(value: str) -> float:
        units = {"Mi": 1.0, "Gi": 1024.0}
        return float(value[:-2]) * units[value[-2:]]

    for service in SERVICES:
        dev = container(by_kind(objects("dev"), "Deployment")[f"amc-{service}"])
        prod = container(by_kind(objects("prod"), "Deployment")[f"amc-{service}"])
        assert mem_mi(prod["resources"]["limits"]["memory"]) > mem_mi(
            dev["resources"]["limits"]["memory"]
        )


def test_migration_job_runs_amc_migrate() -> None:
    for overlay in OVERLAYS:
        job = by_kind(objects(overlay), "Job")["amc-migrate"]
        c = job["spec"]["template"]["spec"]["containers"][0]
        assert c["command"] == ["amc-migrate"]
        assert "DATABASE_URL" in env_of(c)
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_dev_traces_go_to_the_jaeger_in_the_overlay() -> None:
    objs = objects("dev")
    config = by_kind(objs, "ConfigMap")["amc-config"]["data"]
    assert config["OTEL_TRACES_EXPORTER"] == "otlp"
    endpoint = config["OTEL_EXPORTER_OTLP_ENDPOINT"]
    match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", endpoint)
    assert match, endpoint
    service = by_kind(objs, "Service")[match.group(1)]
    assert int(match.group(2)) in {p["port"] for p in service["spec"]["ports"]}
    jaeger = container(by_kind(objs, "Deployment")[match.group(1)])
    assert env_of(jaeger)["COLLECTOR_OTLP_ENABLED"] == "true"
    assert "4318" in endpoint


# --- configuration matches the services' settings -------------------------------------------


def settings_class(service: str) -> type[ServiceSettings]:
    """The service's settings class; the base class while a service has none yet."""
    try:
        module = importlib.import_module(f"services.{service}.settings")
    except ModuleNotFoundError:
        return ServiceSettings
    found = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
    ]
    assert len(found) == 1, f"services/{service}/settings.py: expected one settings class"
    return found[0]


def known_env(name: str, service: str | None) -> bool:
    """Is `name` an environment variable some setting actually reads?"""
    if name.startswith("OTEL_") or name == "LOG_FORMAT":
        return True  # read by the OpenTelemetry SDK and shared.telemetry
    if name.lower() in SHARED_UNPREFIXED:
        return True
    if name.startswith("KAFKA_"):
        return name.removeprefix("KAFKA_").lower() in KafkaSettings.model_fields
    services = [service] if service else list(SERVICES)
    for svc in services:
        prefix = f"{svc.upper()}_"
        cls: type[BaseSettings] = settings_class(svc)
        if name.startswith(prefix) and name.removeprefix(prefix).lower() in cls.model_fields:
            return True
    return False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_configured_variable_is_a_real_setting(overlay: str) -> None:
    objs = objects(overlay)
    unknown = [
        f"ConfigMap amc-config: {key}"
        for key in by_kind(objs, "ConfigMap")["amc-config"]["data"]
        if not known_env(key, None)
    ]
    for service in SERVICES:
        c = container(by_kind(objs, "Deployment")[f"amc-{service}"])
        unknown += [f"amc-{service}: {name}" for name in env_of(c) if not known_env(name, service)]
    assert unknown == []


def test_unknown_variable_is_reported() -> None:
    assert not known_env("TOKEN_NO_SUCH_SETTING", "token")
    assert not known_env("KAFKA_BOOTSTRAP", None)
    assert known_env("TOKEN_LWA_CLIENT_SECRET", "token")


# --- custom resources ------------------------------------------------------------------------


def contract_topics() -> set[str]:
    return {t for e in ALL_EVENTS for t in (e.topic, f"{e.topic}.dlq")}


def kafka_topic_errors(topic: Obj) -> list[str]:
    """Structural check of a Strimzi KafkaTopic (kafka.strimzi.io/v1beta2)."""
    name = topic.get("metadata", {}).get("name", "")
    errors = []
    if topic.get("apiVersion") != "kafka.strimzi.io/v1beta2":
        errors.append(f"{name}: apiVersion must be kafka.strimzi.io/v1beta2")
    if not DNS_1123.match(name) or len(name) > 253:
        errors.append(f"{name!r}: metadata.name must be a DNS-1123 subdomain")
    if not topic.get("metadata", {}).get("labels", {}).get("strimzi.io/cluster"):
        errors.append(f"{name}: the strimzi.io/cluster label names the Kafka cluster")
    spec = topic.get("spec", {})
    if set(spec) - {"topicName", "partitions", "replicas", "config"}:
        errors.append(f"{name}: unknown spec fields {sorted(set(spec) - {'topicName'})}")
    for field in ("partitions", "replicas"):
        value = spec.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            errors.append(f"{name}: spec.{field} must be an integer >= 1")
    config = spec.get("config", {})
    retention = config.get("retention.ms")
    if not isinstance(retention, int) or retention <= 0:
        errors.append(f"{name}: spec.config retention.ms must be a positive integer")
    if not isinstance(spec.get("topicName"), str):
        errors.append(f"{name}: spec.topicName must be the Kafka topic name")
    return errors


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_topics_cover_the_contract_with_dlqs(overlay: str) -> None:
    topics = [o for o in objects(overlay) if o["kind"] == "KafkaTopic"]
    assert [e for t in topics for e in kafka_topic_errors(t)] == []
    names = [t["spec"]["topicName"] for t in topics]
    assert sorted(names) == sorted(contract_topics())
    spec = {t["spec"]["topicName"]: t["spec"] for t in topics}
    for event in ALL_EVENTS:
        source, dlq = spec[event.topic], spec[f"{event.topic}.dlq"]
        assert dlq["config"]["retention.ms"] > source["config"]["retention.ms"], event.topic
    replicas = {s["replicas"] for s in spec.values()}
    assert replicas == ({1} if overlay == "dev" else {3})


def test_kafka_topic_check_catches_a_broken_topic() -> None:
    (topic, *_) = [o for o in objects("prod") if o["kind"] == "KafkaTopic"]
    assert kafka_topic_errors({**topic, "spec": {**topic["spec"], "partitions": 0}})
    assert kafka_topic_errors({**topic, "metadata": {"name": "execution.status_changed"}})


ALERT_METRICS = {
    "AmcOutboxBacklogOld": "amc_outbox_oldest_age_seconds",
    "AmcDeadLetters": 'amc_events_consumed_total{outcome="dead_lettered"}',
    "AmcConsumerLag": "amc_consumer_lag",
    "AmcNotReady": "kube_deployment_status_replicas_unavailable",
    "AmcTokenRefreshFailing": "amc_token_refreshes_total",
    "AmcThrottled": 'amc_api_requests_total{status="429"}',
    "AmcScheduleLate": "amc_schedule_lateness_seconds_bucket",
    "AmcNotificationsFailing": "amc_notifier_deliveries_failing",
    "AmcNotificationsGivenUp": 'amc_notifier_deliveries_total{outcome="failed"}',
}


def test_prometheus_rules_are_well_formed_and_documented() -> None:
    (rule,) = [o for o in objects("prod") if o["kind"] == "PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = {}
    for group in rule["spec"]["groups"]:
        assert isinstance(group["name"], str)
        for r in group["rules"]:
            assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r
            assert isinstance(r["expr"], str)
            assert r["expr"].count("(") == r["expr"].count(")"), r["alert"]
            assert r["labels"]["severity"] in {"info", "warning", "critical"}
            assert r["annotations"]["summary"]
            alerts[r["alert"]] = r
    for alert, metric in ALERT_METRICS.items():
        assert metric in alerts[alert]["expr"], alert
    docs = (ROOT / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", docs, re.M)
    }
    for r in alerts.values():
        anchor = r["annotations"]["runbook"].split("#", 1)[1]
        assert anchor in anchors, f"{r['alert']}: docs/operations.md has no section #{anchor}"


def test_monitoring_is_wired_in_prod_only() -> None:
    assert [o["kind"] for o in objects("dev") if o["apiVersion"].startswith("monitoring")] == []
    pod_monitor = by_kind(objects("prod"), "PodMonitor")["amc-services"]
    for service in SERVICES:
        labels = by_kind(objects("prod"), "Deployment")[f"amc-{service}"]["spec"]["template"][
            "metadata"
        ]["labels"]
        assert selects(pod_monitor["spec"]["selector"], labels)


def test_prod_poller_results_outlive_the_pod() -> None:
    objs = objects("prod")
    pod = by_kind(objs, "Deployment")["amc-poller"]["spec"]["template"]["spec"]
    volume = {v["name"]: v for v in pod["volumes"]}["results"]
    claim = by_kind(objs, "PersistentVolumeClaim")[volume["persistentVolumeClaim"]["claimName"]]
    # Every poller replica writes there, and readers follow the file:// URIs it publishes.
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
