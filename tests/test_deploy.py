"""deploy/: the Kubernetes manifests pass the API's own schema (kubernetes-validate, offline,
strict: an unknown or misspelt field fails) and keep what the service needs of them; the HAProxy
configuration is one HAProxy accepts (where HAProxy is installed: .ci/run installs it)."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from onlstm.service.settings import Settings

from .helpers import REPO

KUBERNETES = REPO / "deploy" / "kubernetes"
HAPROXY_CONFIG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
# the oldest Kubernetes still supported upstream when this was written, and the validator's newest
KUBERNETES_VERSIONS = ("1.32.0", kubernetes_validate.latest_version())


def manifests() -> dict[str, dict]:
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(KUBERNETES.glob("*.yaml"))}


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_manifests_pass_the_kubernetes_schema_strictly(version):
    found = manifests()
    assert {manifest["kind"] for manifest in found.values()} == {
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    for manifest in found.values():
        kubernetes_validate.validate(manifest, version, strict=True)  # raises with the path of the problem
    misspelt = copy.deepcopy(found["deployment.yaml"])
    container(misspelt)["readinessprobe"] = container(misspelt).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, version, strict=True)


def test_the_deployment_probes_drains_and_runs_locked_down():
    deployment = manifests()["deployment.yaml"]
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)
    assert main["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert main["livenessProbe"]["httpGet"]["path"] == "/health"
    environment = {variable["name"]: variable["value"] for variable in main["env"]}
    drain = float(environment.get("ONLSTM_DRAIN_TIMEOUT_S", Settings.model_fields["drain_timeout_s"].default))
    pause = float(main["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pause + drain
    assert drain < 30  # the drain fits Kubernetes' default grace period too
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    # the only writable place is the volume at /tmp, where the kernels' cache is pointed
    assert [mount["mountPath"] for mount in main["volumeMounts"]] == ["/tmp"]
    assert environment["ONLSTM_CACHE"].startswith("/tmp/")
    assert {"cpu", "memory"} <= set(main["resources"]["requests"]) and "memory" in main["resources"]["limits"]
    assert deployment["spec"]["selector"]["matchLabels"] == manifests()["service.yaml"]["spec"]["selector"]


def test_the_haproxy_configuration_is_valid_and_checks_readiness():
    text = HAPROXY_CONFIG.read_text()
    assert "option httpchk GET /ready" in text and "retry-on" in text
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if haproxy is None:
        pytest.skip("HAProxy is not installed (.ci/run installs Debian's package)")
    environment = {**os.environ, "ONLSTM_REPLICA_1": "127.0.0.1:8001", "ONLSTM_REPLICA_2": "127.0.0.1:8002"}
    checked = subprocess.run([haproxy, "-c", "-f", str(HAPROXY_CONFIG)], env=environment, capture_output=True,
                             text=True, cwd=HAPROXY_CONFIG.parent)
    assert checked.returncode == 0, checked.stdout + checked.stderr
