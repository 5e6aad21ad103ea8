"""The audit policy: which findings a docker_storage fact yields, and nothing else."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils import _audit_policy


def _fs(role, path, separate=True, inodes=(100000, 90000), available=(1000, 900)):
    total, free = inodes
    byte_total, byte_available = available
    return {
        "path": path,
        "role": role,
        "mount_point": path if separate else "/",
        "device": "/dev/loop7" if separate else "/dev/vda",
        "device_number": "7:7" if separate else "254:0",
        "fstype": "ext4",
        "separate_from_root": separate,
        "bytes": {"total": byte_total, "available": byte_available},
        "inodes": {"limited": total > 0, "total": total, "free": free},
    }


def _perm(path, mode, uid=0, gid=0, exists=True):
    return {
        "path": path,
        "exists": exists,
        "uid": uid if exists else None,
        "gid": gid if exists else None,
        "owner": None,
        "group": None,
        "mode": mode if exists else None,
    }


HEALTHY = {
    "docker": {"state": "running", "reason": None},
    "engine": {
        "running_driver": "overlay2",
        "driver_status": {"Native Overlay Diff": "true", "Supports d_type": "true"},
    },
    "data_root": "/srv/docker",
    "support": {
        "checked_path": "/srv/docker",
        "backing_filesystem": {"type": "ext4", "mount_point": "/srv", "d_type": True},
    },
    "capacity": {
        "filesystems": [
            _fs("data_root", "/srv/docker"),
            _fs("containerd_root", "/srv/containerd"),
        ]
    },
    "daemon_json": {
        "path": "/etc/docker/daemon.json",
        "problem": None,
        "storage_driver": "overlay2",
    },
    "flags": {"findings": [], "conflicts": []},
    "mounts": {
        "checked": True,
        "ok": True,
        "problem": None,
        "summary": {"containers": 2, "with_problems": 0},
        "problems": [],
    },
    "permissions": {
        "etc_docker": _perm("/etc/docker", "0755"),
        "daemon_json": _perm("/etc/docker/daemon.json", "0644"),
        "data_root": _perm("/srv/docker", "0710"),
    },
}


def facts_with(**changes):
    """The healthy facts with dotted keys replaced (``capacity.filesystems`` etc.)."""
    facts = copy.deepcopy(HEALTHY)
    for dotted, value in changes.items():
        node = facts
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return facts


def found(facts, policy=None):
    return [
        (r["check"], r["cis"], r["status"])
        for r in _audit_policy.findings(_audit_policy.evaluate(facts, policy))
    ]


def test_healthy_host_has_no_findings():
    results = _audit_policy.evaluate(copy.deepcopy(HEALTHY))
    assert _audit_policy.findings(results) == []
    assert [r["check"] for r in results] == list(_audit_policy.CHECKS)
    # Only expected_driver is skipped: the default policy expects no particular driver.
    assert [r["check"] for r in results if r["status"] == "skipped"] == ["expected_driver"]


@pytest.mark.parametrize(
    "changes, expected",
    [
        (
            {"capacity__filesystems": [_fs("data_root", "/var/lib/docker", separate=False)]},
            [("data_root_partition", "1.1.1", "fail")],
        ),
        (
            {
                "capacity__filesystems": [
                    _fs("data_root", "/srv/docker"),
                    _fs("containerd_root", "/var/lib/containerd", separate=False),
                ]
            },
            [("containerd_root_partition", "1.1.1", "fail")],
        ),
        (
            {"engine__running_driver": "aufs", "daemon_json__storage_driver": None},
            [("aufs_not_used", "2.6", "fail")],
        ),
        (
            {"daemon_json__storage_driver": "devicemapper"},
            [("forbidden_driver", None, "fail")],
        ),
        (
            {"permissions__etc_docker": _perm("/etc/docker", "0755", uid=1000)},
            [("etc_docker_owner", "3.5", "fail")],
        ),
        (
            {"permissions__etc_docker": _perm("/etc/docker", "0775")},
            [("etc_docker_mode", "3.6", "fail")],
        ),
        (
            {"permissions__daemon_json": _perm("/etc/docker/daemon.json", "0644", gid=50)},
            [("daemon_json_owner", "3.17", "fail")],
        ),
        (
            {"permissions__daemon_json": _perm("/etc/docker/daemon.json", "0666")},
            [("daemon_json_mode", "3.18", "fail")],
        ),
        (
            {"daemon_json__problem": "daemon.json is not valid JSON"},
            [("daemon_json_valid", None, "fail")],
        ),
        (
            {
                "flags__conflicts": ["storage-driver is set in daemon.json and as a flag"],
                "flags__findings": [{"key": "storage-driver", "value": "overlay2", "where": "x:3"}],
            },
            [("flag_conflict", None, "fail")],
        ),
        (
            # 4.99% free fails, exactly as capacity_info compares: free * 100 < 5 * total.
            {"capacity__filesystems": [_fs("data_root", "/srv/docker", inodes=(10000, 499))]},
            [("free_inodes", None, "fail")],
        ),
        (
            {"capacity__filesystems": [_fs("data_root", "/srv/docker", inodes=(10000, 999))]},
            [("free_inodes", None, "warn")],
        ),
        (
            {"capacity__filesystems": [_fs("data_root", "/srv/docker", inodes=(10000, 1000))]},
            [],
        ),
        (
            {"capacity__filesystems": [_fs("data_root", "/srv/docker", available=(1000, 49))]},
            [("free_bytes", None, "fail")],
        ),
        (
            # btrfs reports no inode limit: not judged.
            {"capacity__filesystems": [_fs("data_root", "/srv/docker", inodes=(0, 0))]},
            [],
        ),
        (
            {"support__backing_filesystem": {"type": "xfs", "mount_point": "/", "d_type": False}},
            [("d_type", None, "fail")],
        ),
        (
            {"engine__driver_status": {"Native Overlay Diff": "false"}},
            [("native_overlay_diff", None, "warn")],
        ),
        (
            {
                "mounts__ok": False,
                "mounts__summary": {"containers": 2, "with_problems": 1},
            },
            [("merged_mounts", None, "fail")],
        ),
    ],
    ids=[
        "1.1.1-data-root",
        "1.1.1-containerd-root",
        "2.6-aufs",
        "forbidden-devicemapper",
        "3.5-owner",
        "3.6-mode",
        "3.17-owner",
        "3.18-mode",
        "daemon-json-invalid",
        "flag-conflict",
        "inodes-fail",
        "inodes-warn",
        "inodes-at-warn-threshold",
        "bytes-fail",
        "btrfs-unlimited-inodes",
        "d_type",
        "native-overlay-diff",
        "merged-mounts",
    ],
)
def test_one_problem_yields_exactly_its_finding(changes, expected):
    assert found(facts_with(**changes)) == expected


@pytest.mark.parametrize(
    "policy, expected",
    [
        ({"expected_drivers": ["btrfs"]}, [("expected_driver", None, "fail")]),
        ({"expected_drivers": ["overlay2"]}, []),
        ({"forbidden_drivers": ["overlay2"]}, [("forbidden_driver", None, "fail")]),
        ({"min_free_inodes": 100000}, [("free_inodes", None, "fail")]),
        ({"warn_free_bytes_percent": 95}, [("free_bytes", None, "warn")]),
    ],
)
def test_policy_options(policy, expected):
    assert found(copy.deepcopy(HEALTHY), policy) == expected


def test_skip_and_severity_override():
    facts = facts_with(permissions__daemon_json=_perm("/etc/docker/daemon.json", "0666"))
    assert found(facts, {"severity": {"daemon_json_mode": "warn"}}) == [
        ("daemon_json_mode", "3.18", "warn")
    ]
    assert found(facts, {"skip": ["daemon_json_mode"]}) == []


def test_host_without_docker_skips_engine_checks_but_judges_etc_docker():
    facts = facts_with(
        docker={"state": "absent", "reason": "no data-root"},
        capacity={"filesystems": []},
        permissions={
            "etc_docker": _perm("/etc/docker", "0777"),
            "daemon_json": _perm("/etc/docker/daemon.json", None, exists=False),
            "data_root": _perm("/var/lib/docker", None, exists=False),
        },
    )
    results = _audit_policy.evaluate(facts)
    assert found(facts) == [("etc_docker_mode", "3.6", "fail")]
    skipped = {r["check"] for r in results if r["status"] == "skipped"}
    assert {"data_root_partition", "free_inodes", "merged_mounts"} <= skipped
    assert {"daemon_json_mode", "daemon_json_owner"} <= skipped


@pytest.mark.parametrize(
    "policy, message",
    [
        ({"colour": 1}, "unknown policy key colour"),
        ({"min_free_inodes_percent": "lots"}, "min_free_inodes_percent must be a number"),
        ({"warn_free_bytes_percent": 120}, "warn_free_bytes_percent out of range"),
        ({"skip": ["nope"]}, "skip names unknown checks: nope"),
        ({"severity": {"d_type": "panic"}}, "severity d_type: panic"),
        ({"forbidden_drivers": "aufs"}, "forbidden_drivers must be a list"),
    ],
)
def test_bad_policy_is_refused_with_the_key(policy, message):
    with pytest.raises(_audit_policy.PolicyError, match=message):
        _audit_policy.check_policy(policy)


@pytest.mark.parametrize(
    "free, expected",
    [
        # 5% of 100000 inodes free is the fail boundary: exactly 5% is not below it.
        (5000, [("free_inodes", None, "warn")]),
        (4999, [("free_inodes", None, "fail")]),
        # 10% is the warn boundary.
        (10000, []),
        (9999, [("free_inodes", None, "warn")]),
    ],
)
def test_the_free_inode_boundaries_are_exact(free, expected):
    facts = facts_with(
        capacity__filesystems=[_fs("data_root", "/var/lib/docker", inodes=(100000, free))]
    )
    assert found(facts, {"min_free_inodes": 0}) == expected


def test_a_warning_on_a_later_filesystem_does_not_hide_a_failure():
    facts = facts_with(
        capacity__filesystems=[
            _fs("data_root", "/var/lib/docker", inodes=(100000, 100)),
            _fs("containerd_root", "/var/lib/containerd", inodes=(100000, 9000)),
        ]
    )
    assert ("free_inodes", None, "fail") in found(facts, {"min_free_inodes": 0})


def test_a_missing_configuration_directory_is_named_once():
    facts = facts_with(permissions__etc_docker=_perm("/etc/docker", "0755", exists=False))
    results = {r["check"]: r for r in _audit_policy.evaluate(facts)}
    for check in ("etc_docker_owner", "etc_docker_mode"):
        assert results[check]["status"] == "skipped"
        assert results[check]["message"] == "the configuration directory /etc/docker does not exist"


def _result(facts, check, policy=None):
    return next(r for r in _audit_policy.evaluate(facts, policy) if r["check"] == check)


def test_filesystems_without_an_inode_limit_are_not_judged_for_inodes():
    # btrfs reports no inode limit (capacity_info: limited false, figures 0).
    unlimited = facts_with(capacity__filesystems=[_fs("data_root", "/srv/docker", inodes=(0, 0))])
    result = _result(unlimited, "free_inodes")
    assert result["status"] == "skipped"
    assert result["message"] == "no examined filesystem limits inodes"
    mixed = facts_with(
        capacity__filesystems=[
            _fs("data_root", "/srv/docker", inodes=(0, 0)),
            _fs("containerd_root", "/srv/containerd", inodes=(100000, 90000)),
        ]
    )
    result = _result(mixed, "free_inodes")
    assert result["status"] == "pass"
    assert list(result["evidence"]) == ["/srv/containerd"]
    assert result["message"] == "enough free inodes"


def test_aufs_set_through_a_dockerd_flag_is_found():
    # The engine still runs overlay2, but its next start takes the flag.
    facts = facts_with(
        flags__findings=[
            {"key": "data-root", "value": "/srv/aufs", "where": "/etc/default/docker:2"},
            {"key": "storage-driver", "value": "overlay2", "where": "/etc/default/docker:3"},
            {"key": "storage-driver", "value": "aufs", "where": "/etc/default/docker:4"},
        ]
    )
    assert found(facts) == [("aufs_not_used", "2.6", "fail")]
    result = _result(facts, "aufs_not_used")
    assert result["message"] == "aufs is in use or configured: move to overlay2"
    assert result["evidence"] == {"drivers": ["overlay2", "aufs"]}
    devicemapper = facts_with(
        flags__findings=[
            {"key": "storage-driver", "value": "devicemapper", "where": "/etc/default/docker:3"}
        ]
    )
    assert found(devicemapper) == [("forbidden_driver", None, "fail")]
    assert _result(devicemapper, "forbidden_driver")["message"] == (
        "forbidden storage driver in use or configured: devicemapper"
    )


def test_a_healthy_host_says_what_was_found_fine():
    results = {r["check"]: r for r in _audit_policy.evaluate(copy.deepcopy(HEALTHY))}
    assert results["daemon_json_valid"]["message"] == "daemon.json storage keys are readable"
    assert results["flag_conflict"]["message"] == (
        "no storage setting is both a dockerd flag and in daemon.json"
    )
    assert results["aufs_not_used"]["message"] == "aufs is not used"
    # The running driver and daemon.json's are the same driver: named once.
    assert results["aufs_not_used"]["evidence"] == {"drivers": ["overlay2"]}
    assert results["native_overlay_diff"]["message"] == "Native Overlay Diff: true"
    assert results["free_bytes"]["message"] == "enough free bytes"


def test_no_driver_in_use_or_configured_names_none():
    facts = facts_with(engine__running_driver=None, daemon_json__storage_driver=None)
    assert _result(facts, "aufs_not_used")["evidence"] == {"drivers": []}


def test_findings_say_what_is_wrong_and_what_to_do():
    facts = facts_with(
        permissions__etc_docker=_perm("/etc/docker", "0755", uid=1000),
        engine__driver_status={"Native Overlay Diff": "false"},
    )
    assert _result(facts, "etc_docker_owner")["message"] == (
        "the configuration directory /etc/docker is owned by 1000:0, not root:root: chown "
        "root:root it"
    )
    assert _result(facts, "native_overlay_diff")["message"] == (
        "Native Overlay Diff: false (image builds and commits compute diffs slowly)"
    )


def test_daemon_json_may_not_be_executable_by_others():
    facts = facts_with(permissions__daemon_json=_perm("/etc/docker/daemon.json", "0645"))
    assert found(facts) == [("daemon_json_mode", "3.18", "fail")]


@pytest.mark.parametrize(
    "changes, check, message",
    [
        ({"capacity__filesystems": []}, "free_bytes", "no filesystem was examined"),
        ({"capacity__filesystems": []}, "free_inodes", "no filesystem was examined"),
        (
            {"support__backing_filesystem": {"type": "ext4", "mount_point": "/", "d_type": None}},
            "d_type",
            "d_type support could not be determined",
        ),
        (
            {"engine__driver_status": {}},
            "native_overlay_diff",
            "the engine reports no overlay diff mode",
        ),
        (
            {"mounts__checked": False, "mounts__problem": "the engine does not answer"},
            "merged_mounts",
            "the engine does not answer",
        ),
    ],
)
def test_checks_without_the_facts_they_need_are_skipped_with_the_reason(changes, check, message):
    result = _result(facts_with(**changes), check)
    assert (result["status"], result["message"]) == ("skipped", message)


@pytest.mark.parametrize(
    "available, expected",
    [
        # Bytes on 1000: below 5% available fails, below 10% warns, exactly each does not.
        (49, [("free_bytes", None, "fail")]),
        (50, [("free_bytes", None, "warn")]),
        (99, [("free_bytes", None, "warn")]),
        (100, []),
    ],
)
def test_the_free_byte_boundaries_are_exact(available, expected):
    facts = facts_with(
        capacity__filesystems=[_fs("data_root", "/srv/docker", available=(1000, available))]
    )
    assert found(facts) == expected


@pytest.mark.parametrize(
    "policy",
    [
        {"warn_free_bytes_percent": 100},
        {"min_free_inodes_percent": 0},
        {"severity": {"d_type": "fail", "native_overlay_diff": "warn"}},
    ],
)
def test_policy_values_at_the_ends_of_their_ranges_are_taken(policy):
    assert _audit_policy.check_policy(policy)


@pytest.mark.parametrize(
    "policy, message",
    [
        ({"min_free_bytes": -1}, "min_free_bytes out of range"),
        ({"min_free_bytes_percent": -0.5}, "min_free_bytes_percent out of range"),
        ({"warn_free_inodes_percent": 100.5}, "warn_free_inodes_percent out of range"),
        ({"severity": ["d_type"]}, "severity must be a dict"),
    ],
)
def test_policy_values_out_of_range_are_refused(policy, message):
    with pytest.raises(_audit_policy.PolicyError, match=message):
        _audit_policy.check_policy(policy)
