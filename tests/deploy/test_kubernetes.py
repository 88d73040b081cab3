"""The Kubernetes manifests: strict schema validation by kubernetes-validate, plus the
promises the schemas cannot check (three replicas on PostgreSQL, probes, non-root, secrets
by reference).

The ServiceMonitor is a Prometheus Operator CRD, which kubernetes-validate has no schema
for; its shape is checked structurally instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.deploy.paths import DEPLOY
from tests.deploy.secrets import secret_problems, secret_refs

KUBERNETES = DEPLOY / "kubernetes"
MANIFESTS = sorted(KUBERNETES.rglob("*.yaml"))
#: The oldest Kubernetes still commonly run, and the newest the validator knows.
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _all() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for path in MANIFESTS for doc in _documents(path)}


def _container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = _all()["Deployment"]["spec"]["template"]["spec"][
        "containers"
    ]
    (container,) = containers
    return container


def _config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(_all()["ConfigMap"]["data"]["healthd.yaml"])
    return config


def test_every_required_kind_is_there() -> None:
    assert set(_all()) == {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "ServiceMonitor",
        "PodDisruptionBudget",
    }


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: str(path.relative_to(KUBERNETES)))
def test_manifest_is_valid_strictly(path: Path, version: str) -> None:
    for document in _documents(path):
        if document["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: see test_service_monitor_*
        kubernetes_validate.validate(document, version, strict=True)


def test_strict_validation_as_run_here_rejects_a_misspelt_field() -> None:
    deployment = _all()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_service_monitor_scrapes_the_services_metrics_port() -> None:
    monitor = _all()["ServiceMonitor"]
    service = _all()["Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["name"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings"}
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


def test_service_selects_the_deployments_pods() -> None:
    pod_labels = _all()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert _all()["Service"]["spec"]["selector"].items() <= pod_labels.items()
    assert (
        _all()["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items()
        <= pod_labels.items()
    )


def test_three_replicas_rolled_one_at_a_time_on_a_shared_postgresql() -> None:
    spec = _all()["Deployment"]["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 1
    assert _config()["store"].startswith("postgresql://")


def test_pod_budget_keeps_two_replicas_through_a_drain() -> None:
    assert _all()["PodDisruptionBudget"]["spec"] == {
        "minAvailable": 2,
        "selector": _all()["Deployment"]["spec"]["selector"],
    }


def test_the_database_password_comes_from_the_secret_by_reference() -> None:
    store = urlsplit(_config()["store"])
    assert store.password is None
    [reference] = parse_qs(store.query)["password"]
    kind, _, name = reference.partition(":")
    env = {var["name"]: var for var in _container()["env"]}
    assert kind == "env"
    assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "healthd-secrets"


def test_probes_use_readyz_for_readiness_and_healthz_for_liveness() -> None:
    container = _container()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_container_runs_non_root_on_a_read_only_root_with_a_scratch_volume() -> None:
    pod = _all()["Deployment"]["spec"]["template"]["spec"]
    container = _container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert not any("persistentVolumeClaim" in volume for volume in pod["volumes"])


def test_container_sets_requests_and_a_memory_limit() -> None:
    resources = _container()["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_config_listens_where_the_container_port_is() -> None:
    port = _container()["ports"][0]["containerPort"]
    assert _config()["listen"] == f"0.0.0.0:{port}"
    assert f"0.0.0.0:{port}" in _container()["args"]


def test_config_holds_no_secret_and_every_reference_is_provided_by_the_pod() -> None:
    config = _config()
    assert secret_problems(config) == []
    env = {var["name"]: var for var in _container()["env"]}
    pod = _all()["Deployment"]["spec"]["template"]["spec"]
    secret_volumes = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    secret_files = {
        f"{mount['mountPath']}/{item['path']}"
        for mount in _container()["volumeMounts"]
        if mount["name"] in secret_volumes
        for item in secret_volumes[mount["name"]]["items"]
    }
    for ref in secret_refs(config):
        kind, _, name = ref.partition(":")
        if kind == "env":
            assert "secretKeyRef" in env[name]["valueFrom"], ref
        else:
            assert name in secret_files, ref


def test_manifests_never_carry_a_literal_secret_value() -> None:
    for var in _container()["env"]:
        assert "value" not in var, f"env {var['name']} has a literal value; use secretKeyRef"
    secret = _all()["Secret"]
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        assert value.startswith("REPLACE-ME"), f"example Secret key {key} is not a placeholder"


def test_deployment_reads_only_keys_the_example_secret_shows() -> None:
    secret = _all()["Secret"]
    pod = _all()["Deployment"]["spec"]["template"]["spec"]
    env_keys = {var["valueFrom"]["secretKeyRef"]["key"] for var in _container()["env"]}
    file_keys = {
        item["key"] for v in pod["volumes"] if "secret" in v for item in v["secret"]["items"]
    }
    assert env_keys | file_keys == set(secret["stringData"])
