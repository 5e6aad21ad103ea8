"""storage_facts through ansible: a host without Docker, and a bad policy."""

from __future__ import annotations

import json

import pytest
from ansible_module import run_module
from daemon_json_corpus import CASES, read_bad_file
from test_without_docker import WITHOUT_DOCKERD

pytestmark = pytest.mark.integration


def test_host_without_docker_is_a_state_not_a_failure(tmp_path):
    result = run_module(
        "storage_facts",
        {
            "data_root": str(tmp_path / "docker"),
            "config_path": str(tmp_path / "etc" / "docker" / "daemon.json"),
            "containerd_root": str(tmp_path / "containerd"),
            "host_root": str(tmp_path),
        },
        check=True,
        wrapper=WITHOUT_DOCKERD,
    )
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    facts = result["ansible_facts"]["docker_storage"]
    assert facts["docker"]["state"] == "absent"
    assert "dockerd is not installed" in facts["docker"]["reason"]
    assert facts["capacity"]["filesystems"] == []
    assert facts["capacity"]["problem"] == "the data-root %s does not exist" % (tmp_path / "docker")
    assert facts["mounts"] == {"checked": False, "problem": "the Engine API did not answer"}
    assert facts["findings"] == []
    # The drivers are still judged, for a current engine, on the nearest existing directory
    # (the overlay probe mounts there and leaves nothing).
    assert facts["support"]["checked_path"] == str(tmp_path)
    assert facts["support"]["drivers"]["overlay2"]["supported"] is True
    assert facts["support"]["overlay_probe"]["ok"] is True
    assert list(tmp_path.iterdir()) == []


def test_bad_policy_key_fails_naming_it(tmp_path):
    result = run_module(
        "storage_facts",
        {"config_path": str(tmp_path / "daemon.json"), "policy": {"min_free_inode": 5}},
    )
    assert result["failed"]
    assert result["msg"].startswith("unknown policy key min_free_inode; known keys: ")


@pytest.mark.parametrize("name", sorted(n for n in CASES if CASES[n].read_refuses))
def test_daemon_json_dockerd_cannot_read_as_written_is_a_finding_not_a_failure(tmp_path, name):
    config_path = tmp_path / "daemon.json"
    config_path.write_bytes(read_bad_file(name))
    result = run_module(
        "storage_facts",
        {
            "data_root": str(tmp_path / "docker"),
            "config_path": str(config_path),
            "containerd_root": str(tmp_path / "containerd"),
            "host_root": str(tmp_path),
            "probe": False,
        },
        check=True,
        wrapper=WITHOUT_DOCKERD,
    )
    assert not result.get("failed"), result.get("msg")
    assert "Traceback" not in json.dumps(result)
    facts = result["ansible_facts"]["docker_storage"]
    problem = facts["daemon_json"]["problem"]
    assert problem.startswith("%s " % config_path), problem
    for phrase in CASES[name].phrases:
        assert phrase in problem
    check = next(c for c in facts["checks"] if c["check"] == "daemon_json_valid")
    assert (check["status"], check["message"]) == ("fail", problem)
