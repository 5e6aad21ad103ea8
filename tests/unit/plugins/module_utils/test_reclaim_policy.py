"""The policy, the targets and the plan of reclaim, on figures given."""

from __future__ import annotations

import os

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils._reclaim_policy import (
    DEFAULT_STEPS,
    LADDER,
    ReclaimPolicyError,
    filesystem_state,
    helps,
    parse_duration,
    parse_size,
    plan,
    read_policy,
    shortfall,
    targets_hold,
    unreachable_message,
)


@pytest.mark.parametrize(
    "text, seconds",
    [("0", 0), ("0s", 0), ("90m", 5400), ("1h30m", 5400), ("7d", 604800), ("2w", 1209600)],
)
def test_durations(text, seconds):
    assert parse_duration(text, "x") == seconds


@pytest.mark.parametrize("text", ["soon", "-1h", "1.5h", "", "h", "10 years"])
def test_bad_durations_name_the_option(text):
    with pytest.raises(ReclaimPolicyError, match="stopped_containers_older_than is"):
        parse_duration(text, "stopped_containers_older_than")


@pytest.mark.parametrize(
    "text, size",
    [("0", 0), ("1048576", 1048576), ("500MB", 500 * 10**6), ("2GiB", 2 << 30), ("1.5k", 1500)],
)
def test_sizes(text, size):
    assert parse_size(text, "x") == size


@pytest.mark.parametrize("text", ["big", "-5", "5 parsecs", "1e6"])
def test_bad_sizes_name_the_option(text):
    with pytest.raises(ReclaimPolicyError, match="build_cache_keep is"):
        parse_size(text, "build_cache_keep")


def test_the_default_policy_runs_five_steps_at_the_audits_warning_threshold():
    policy = read_policy({})
    assert policy["steps"] == list(DEFAULT_STEPS)
    assert "container_logs" not in policy["steps"] and "anonymous_volumes" not in policy["steps"]
    assert policy["target_free_inodes_percent"] == policy["target_free_bytes_percent"] == 10.0
    assert policy["stopped_containers_older_than"] == 86400


def test_steps_always_run_in_ladder_order():
    policy = read_policy({"steps": ["orphaned_layers", "build_cache", "anonymous_volumes"]})
    assert policy["steps"] == ["build_cache", "orphaned_layers", "anonymous_volumes"]


@pytest.mark.parametrize(
    "params, words",
    [
        ({"target_free_inodes_percent": -1.0}, "target_free_inodes_percent is -1.0"),
        ({"target_free_bytes_percent": 100.5}, "target_free_bytes_percent is 100.5"),
        ({"steps": ["prune_everything"]}, "prune_everything, which is not a step"),
        ({"unused_images_older_than": "a week"}, "unused_images_older_than is 'a week'"),
    ],
)
def test_bad_policies_are_refused_by_name(params, words):
    with pytest.raises(ReclaimPolicyError) as caught:
        read_policy(params)
    assert words in str(caught.value)


def _state(bytes_free, inodes_free, bytes_total=1000, inodes_total=100, role="data_root"):
    st = os.statvfs_result((1, 1, bytes_total, 0, bytes_free, inodes_total, inodes_free, 0, 0, 255))
    return filesystem_state(role, "/var/lib/docker", st)


def test_shortfall_and_targets():
    policy = read_policy({"target_free_bytes_percent": 10, "target_free_inodes_percent": 20})
    state = _state(bytes_free=50, inodes_free=15)
    assert shortfall(state, policy) == {"bytes": 50, "inodes": 5}
    assert not targets_hold({"data_root": state}, policy)
    assert targets_hold({"data_root": _state(100, 20)}, policy)


def test_a_filesystem_without_an_inode_limit_meets_the_inode_target():
    policy = read_policy({"target_free_inodes_percent": 50})
    assert targets_hold({"data_root": _state(500, 0, inodes_total=0)}, policy)


def _candidate(step, name, size, inodes, filesystem="data_root"):
    return {"step": step, "kind": "image", "id": name, "name": name, "filesystem": filesystem,
            "bytes": size, "inodes": inodes, "age_seconds": 0}  # fmt: skip


def _ladder(objects):
    def candidates_of(step, chosen):
        return iter(objects.get(step, []))

    return candidates_of


def test_the_plan_stops_as_soon_as_the_targets_hold():
    policy = read_policy({"target_free_bytes_percent": 0, "target_free_inodes_percent": 20})
    objects = {
        "build_cache": [_candidate("build_cache", "b1", 10, 2)],
        "dangling_images": [
            _candidate("dangling_images", "d1", 10, 5),
            _candidate("dangling_images", "d2", 10, 5),
        ],  # fmt: skip
        "stopped_containers": [_candidate("stopped_containers", "c1", 10, 50)],
    }
    steps, reached, next_step = plan({"data_root": _state(0, 10)}, policy, _ladder(objects))
    assert reached and next_step is None
    assert [(s["step"], [o["id"] for o in s["objects"]]) for s in steps] == [
        ("build_cache", ["b1"]),
        ("dangling_images", ["d1", "d2"]),
    ]
    assert steps[-1]["expected"]["data_root"]["inodes_free"] == 22


def test_nothing_is_planned_when_the_targets_already_hold():
    policy = read_policy({})
    objects = {"build_cache": [_candidate("build_cache", "b1", 10, 2)]}
    assert plan({"data_root": _state(500, 50)}, policy, _ladder(objects)) == ([], True, None)


def test_objects_that_free_nothing_lacking_are_left_alone():
    policy = read_policy({"target_free_bytes_percent": 0, "target_free_inodes_percent": 20})
    log = dict(_candidate("container_logs", "log", 500, 0), kind="log")
    other_fs = _candidate("container_logs", "x", 5, 5, filesystem="containerd_root")
    unknown = _candidate("container_logs", "u", None, None)
    state = _state(0, 10)
    assert not helps({"data_root": state}, log, policy)
    assert not helps({"data_root": state}, other_fs, policy)
    assert helps({"data_root": state}, unknown, policy)


def test_an_unreachable_target_names_the_next_step():
    policy = read_policy({"steps": ["build_cache"], "target_free_inodes_percent": 50})
    steps, reached, next_step = plan({"data_root": _state(500, 10)}, policy, _ladder({}))
    assert not reached and next_step == "dangling_images"
    message = unreachable_message({"data_root": _state(500, 10)}, policy, next_step)
    assert "/var/lib/docker (data_root) lacks 40 inodes" in message
    assert "the next step would have been dangling_images" in message


def test_the_ladder_is_in_the_documented_order():
    assert LADDER == (
        "build_cache", "dangling_images", "stopped_containers", "unused_images",
        "orphaned_layers", "container_logs", "anonymous_volumes",
    )  # fmt: skip


def test_small_objects_the_target_does_not_need_are_left_out_of_the_plan():
    """The last object taken often makes small ones before it unnecessary: independent ones
    (build cache, layers, logs) go out of the plan, smallest first; images never do (their
    figures depend on each other)."""
    policy = read_policy({"target_free_bytes_percent": 0, "target_free_inodes_percent": 20})
    cache = [dict(_candidate("build_cache", "b%d" % n, 1, n), kind="build_cache") for n in (2, 9)]
    objects = {
        "build_cache": cache,
        "dangling_images": [_candidate("dangling_images", "d1", 1, 3)],
        "stopped_containers": [
            dict(_candidate("stopped_containers", "c1", 1, 8), kind="container")
        ],  # fmt: skip
    }
    steps, reached, _next = plan({"data_root": _state(0, 1)}, policy, _ladder(objects))
    assert reached
    # 2 + 9 + 3 + 8 = 22 inodes taken for 19 lacking: b2 is not needed, b9 is.
    assert [[o["id"] for o in s["objects"]] for s in steps] == [["b9"], ["d1"], ["c1"]]
    assert steps[-1]["expected"]["data_root"]["inodes_free"] == 1 + 9 + 3 + 8
