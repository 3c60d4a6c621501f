"""infra/k8s validated offline: no cluster here, so each manifest is checked against the schema its
consumer enforces, and a deliberately broken copy of each must fail the same check.

- Built-in kinds (Deployment, Service, RBAC, ...): the Kubernetes OpenAPI schemas of one release,
  through ``kubernetes-validate`` (strict: unknown fields fail, as ``kubectl apply --validate=strict``).
- The ``RayCluster``: KubeRay's own CRD schema (v1.7.0, vendored in infra/k8s/schemas/).
- The work pool's base job template: Prefect's server-side check (every placeholder a declared
  variable), the Kubernetes worker's job configuration built from it with its defaults
  (prefect-kubernetes' ``KubernetesWorkerJobConfiguration``), and the Job it renders, against the
  Kubernetes schema.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pydantic
import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "infra" / "k8s"
KUBERNETES_VERSION = "1.32"  # the oldest release infra/README.md supports
CRD = K8S / "schemas" / "kuberay-v1.7.0-rayclusters.crd.yaml"
TEMPLATE = K8S / "work-pool-base-job-template.json"


def _documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


DOCUMENTS = _documents()
BUILT_IN = [(name, doc) for name, doc in DOCUMENTS if doc["kind"] != "RayCluster"]


def _validate_built_in(doc: dict) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@functools.cache
def _raycluster_schema() -> dict:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


def _validate_raycluster(doc: dict) -> None:
    assert doc["apiVersion"] == "ray.io/v1"
    jsonschema.validate(doc, _raycluster_schema())


def _validate_work_pool_template(template: dict) -> dict:
    """What the Prefect server checks when the pool is created, then what the worker builds from it
    (the defaults rendered into its job configuration), then the Job manifest against Kubernetes."""
    from prefect.server.schemas.actions import validate_base_job_template
    from prefect.utilities.templating import apply_values
    from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

    validate_base_job_template(template)
    jsonschema.Draft202012Validator.check_schema(template["variables"])
    assert set(template["variables"]["properties"]) <= set(
        KubernetesWorker.get_default_base_job_template()["variables"]["properties"]
    )
    # What KubernetesWorkerJobConfiguration.from_template_and_values does, less its block lookup (which
    # needs a Prefect API): the variables' defaults rendered into the job configuration, then validated.
    defaults = KubernetesWorkerJobConfiguration._get_base_config_defaults(template["variables"]["properties"])
    rendered = apply_values(copy.deepcopy(template["job_configuration"]), defaults)
    configuration = KubernetesWorkerJobConfiguration.model_validate(rendered)
    manifest = copy.deepcopy(configuration.job_manifest)
    # The worker turns the env mapping into Kubernetes' list form when it prepares a flow run.
    for container in manifest["spec"]["template"]["spec"]["containers"]:
        if isinstance(container.get("env"), dict):
            container["env"] = [{"name": k, "value": str(v)} for k, v in container["env"].items()]
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    return manifest


def test_every_manifest_is_found() -> None:
    kinds = {doc["kind"] for _, doc in DOCUMENTS}
    assert {"Deployment", "Service", "RayCluster", "Namespace", "Role", "RoleBinding"} <= kinds
    names = {doc["metadata"]["name"] for _, doc in DOCUMENTS if doc["kind"] == "Deployment"}
    assert {"prefect", "prefect-worker", "mlflow", "bento"} <= names


@pytest.mark.parametrize("name,doc", BUILT_IN, ids=[name for name, _ in BUILT_IN])
def test_built_in_kinds_match_the_kubernetes_schema(name: str, doc: dict) -> None:
    _validate_built_in(doc)


def test_broken_deployment_fails_the_kubernetes_schema() -> None:
    broken = copy.deepcopy(dict(DOCUMENTS)["bento.yaml:Deployment/bento"])
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate_built_in(broken)
    unknown = copy.deepcopy(dict(DOCUMENTS)["bento.yaml:Deployment/bento"])
    unknown["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}  # misspelt: strict refuses
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate_built_in(unknown)


def test_raycluster_matches_kuberays_crd() -> None:
    _validate_raycluster(dict(DOCUMENTS)["raycluster.yaml:RayCluster/mlops-ray"])


def test_broken_raycluster_fails_kuberays_crd() -> None:
    broken = copy.deepcopy(dict(DOCUMENTS)["raycluster.yaml:RayCluster/mlops-ray"])
    broken["spec"]["workerGroupSpecs"][0]["replicas"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        _validate_raycluster(broken)
    headless = copy.deepcopy(dict(DOCUMENTS)["raycluster.yaml:RayCluster/mlops-ray"])
    del headless["spec"]["headGroupSpec"]["template"]
    with pytest.raises(jsonschema.ValidationError):
        _validate_raycluster(headless)


def test_work_pool_template_matches_the_kubernetes_worker() -> None:
    manifest = _validate_work_pool_template(json.loads(TEMPLATE.read_text()))
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["RAY_ADDRESS"] == "mlops-ray-head-svc.mlops.svc:6379"
    assert container["envFrom"] == [{"secretRef": {"name": "mlops-run-secrets"}}]


def test_broken_work_pool_templates_fail() -> None:
    template = json.loads(TEMPLATE.read_text())
    undeclared = copy.deepcopy(template)
    undeclared["job_configuration"]["job_manifest"]["spec"]["backoffLimit"] = "{{ retries }}"
    with pytest.raises(ValueError, match="retries"):
        _validate_work_pool_template(undeclared)
    bad_job = copy.deepcopy(template)
    bad_job["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["restartPolicy"] = ["Never"]
    # Refused by the worker's configuration model or, past it, by the Kubernetes schema.
    with pytest.raises((kubernetes_validate.ValidationError, pydantic.ValidationError)):
        _validate_work_pool_template(bad_job)
