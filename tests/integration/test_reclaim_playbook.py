"""The reclaim playbook (and its role) as an operator runs it, against a real dockerd whose
data-root is alone on a small ext4 filled to 97% of its inodes (harness.crowded_store): the
targets come from the audit's policy, --check changes nothing, and a second run changes
nothing either."""

from __future__ import annotations

import json
import os

import pytest
from ansible_module import run_playbook

pytestmark = pytest.mark.integration

PLAYBOOK = "dockerhost.storage.reclaim"
# The objects of the crowded store are seconds old: every age is waived.
AGES = {
    "reclaim_dangling_images_older_than": "0s",
    "reclaim_stopped_containers_older_than": "0s",
    "reclaim_unused_images_older_than": "0s",
    "reclaim_orphaned_layers_older_than": "0s",
}


@pytest.fixture
def crowded(crowded_dockerd):
    return crowded_dockerd


def _group_vars(directory):
    """An inventory whose group_vars hold the audit's policy, as an operator's do, and no
    reclaim target: ``-i`` arguments for ansible-playbook."""
    os.makedirs(os.path.join(directory, "group_vars"))
    with open(os.path.join(directory, "hosts.yml"), "w", encoding="utf-8") as hosts:
        hosts.write("all:\n  hosts:\n    localhost:\n")
    with open(os.path.join(directory, "group_vars", "all.yml"), "w", encoding="utf-8") as all_:
        all_.write("audit_policy:\n  warn_free_inodes_percent: 20\n")
    return ["-i", directory]


def _extra_vars(daemon, with_policy=True, **more):
    """``-e`` with the private dockerd's socket and the ages waived, and the audit's policy
    (unless the inventory gives it)."""
    variables = {"reclaim_docker_host": "unix://" + daemon.socket}
    if with_policy:
        variables["audit_policy"] = {"warn_free_inodes_percent": 20}
    variables.update(AGES)
    variables.update(more)
    return ["-e", json.dumps(variables)]


def _task(answer, name):
    """The result of the role's task ``name`` (the callback prefixes the role's name)."""
    names = [task["task"]["name"] for task in answer["plays"][0]["tasks"]]
    for task in answer["plays"][0]["tasks"]:
        if task["task"]["name"].endswith(" : " + name):
            return task["hosts"]["localhost"]
    raise AssertionError("no task %r in the run: %s" % (name, names))


def _reclaim(answer):
    return _task(answer, "Reclaim bytes and inodes until the targets hold")


def _summary(answer):
    return _task(answer, "Show what each step removed and freed")["msg"]


def _inodes_free_percent(path):
    st = os.statvfs(path)
    return st.f_ffree * 100 / st.f_files


def _objects(daemon):
    containers = {c["Id"] for c in daemon.api("GET", "/containers/json?all=1")}
    images = {i["Id"] for i in daemon.api("GET", "/images/json?all=1")}
    return containers, images


def test_the_audit_threshold_is_reached_once_and_check_mode_changes_nothing(crowded, tmp_path):
    daemon, fs, made = crowded
    # The policy comes from the inventory's group_vars; the other variables from -e.
    options = _group_vars(str(tmp_path / "inventory")) + _extra_vars(daemon, with_policy=False)
    start = os.statvfs(fs.mount_point).f_ffree
    assert _inodes_free_percent(fs.mount_point) <= 3.5, "the fill did not reach 97% of the inodes"
    objects = _objects(daemon)

    planned = run_playbook(PLAYBOOK, "--check", "--diff", *options)
    plan = _reclaim(planned)
    assert plan["changed"] and plan["reached"]
    # The audit's warning threshold became the target; the bytes target is the audit's default.
    assert plan["targets"] == {"free_inodes_percent": 20.0, "free_bytes_percent": 10.0}
    assert os.statvfs(fs.mount_point).f_ffree == start, "--check changed the filesystem"
    assert _objects(daemon) == objects, "--check removed something"
    assert plan["diff"]["before"] != plan["diff"]["after"]
    lines = _summary(planned)
    assert any(line.startswith("build_cache: would remove ") for line in lines), lines
    assert lines[-1].startswith("targets reached (expected) with ")

    done = run_playbook(PLAYBOOK, *options)
    assert done["stats"]["localhost"]["changed"] == 1
    result = _reclaim(done)
    assert result["reached"] and result["removed_objects"] == plan["removed_objects"]
    assert _inodes_free_percent(fs.mount_point) >= 20
    lines = _summary(done)
    assert lines[0].startswith("data_root %s: inodes free " % daemon.data_root), lines
    for entry in result["steps"]:
        step, inodes = entry["step"], sum(f["inodes"] for f in entry["freed"].values())
        assert any(
            line.startswith("%s: removed " % step) and " freed %d inodes and " % inodes in line
            for line in lines
        ), (step, lines)
    # What is in use or kept stayed.
    containers, images = _objects(daemon)
    assert {made["keep"]["running"], made["keep"]["kept_container"]} <= containers
    assert {made["keep"]["image"], made["keep"]["kept_image"]} <= images

    after = _objects(daemon), os.statvfs(fs.mount_point).f_ffree
    again = run_playbook(PLAYBOOK, *options)
    assert again["stats"]["localhost"]["changed"] == 0
    assert _reclaim(again)["steps"] == []
    assert _summary(again)[-1] == "nothing to remove: the targets already hold"
    assert _objects(daemon) == after[0]
    assert os.statvfs(fs.mount_point).f_ffree >= after[1]


def test_a_target_out_of_reach_shows_the_summary_and_fails_the_play(crowded):
    daemon, fs, made = crowded
    answer = run_playbook(
        PLAYBOOK,
        *_extra_vars(daemon, reclaim_steps=["build_cache"]),
        must_pass=False,
    )
    assert answer["stats"]["localhost"]["failures"] == 1
    result = _reclaim(answer)
    assert result["failed"] and result["next_step"] == "dangling_images"
    lines = _summary(answer)
    assert lines[-1] == "targets not reached; the next step would have been dangling_images"


def test_the_role_refuses_a_value_of_the_wrong_type_before_reaching_the_host():
    answer = run_playbook(
        PLAYBOOK,
        "-e",
        json.dumps({"reclaim_target_free_inodes_percent": "lots", "reclaim_steps": ["all"]}),
        must_pass=False,
    )
    tasks = answer["plays"][0]["tasks"]
    assert len(tasks) == 1, "the play went past the argument check"
    refusal = tasks[0]["hosts"]["localhost"]
    assert refusal["failed"]
    errors = "\n".join(refusal["argument_errors"])
    assert "reclaim_target_free_inodes_percent" in errors and "float" in errors
    assert "reclaim_steps" in errors and "all" in errors
