"""A host where Docker is not installed yet: the module says what the host could run.

The test hides dockerd in a private mount namespace (/dev/null bound over the binary, an empty
tmpfs over /run where the engine's socket lives), so the module sees this host as a fresh one
would look.
"""

import os
import shutil
import subprocess

import pytest
from ansible_module import run_module
from collection_path import REPO_ROOT

pytestmark = pytest.mark.integration

DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
# Static text; the test's own argv follows "$@".
WITHOUT_DOCKERD = [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    'mount --bind /dev/null "$0" && mount -t tmpfs tmpfs /run && exec "$@"',
    DOCKERD,
]


def test_module_judges_for_a_current_engine_when_docker_is_absent(tmp_path):
    result = run_module(
        "driver_support_info", {"path": str(tmp_path / "docker")}, wrapper=WITHOUT_DOCKERD
    )
    assert not result.get("failed"), result.get("msg")
    assert result["engine"]["version"] is None
    assert result["engine"]["version_source"] == "none"
    assert "dockerd is not installed" in result["engine"]["problem"]
    assert result["drivers"]["overlay2"]["supported"] is True
    assert (
        "no Docker engine found: judged for Docker Engine 29.0"
        in result["drivers"]["overlay2"]["warnings"]
    )
    assert result["would_pick"]["image_store"] == "containerd"
    assert result["recommended"] == "overlay2"


def test_audit_report_says_what_the_host_could_run(tmp_path):
    env = dict(os.environ, AUDIT_REPORT_DIR=str(tmp_path))
    completed = subprocess.run(
        WITHOUT_DOCKERD + ["bash", os.path.join(REPO_ROOT, "scripts", "audit")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = (tmp_path / "hosts" / "localhost.md").read_text()
    assert report in completed.stdout
    assert "Docker is not installed; this host could run:\n- overlay2\n" in report
    assert "dockerd is not installed" in report
    assert "judged for Docker Engine 29.0" in report
