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


def _perm(path, mode, uid=0, gid=0, exists=True, group=None):
    return {
        "path": path,
        "exists": exists,
        "uid": uid if exists else None,
        "gid": gid if exists else None,
        "owner": None,
        "group": group if exists else None,
        "mode": mode if exists else None,
    }


# Where a Debian host keeps what CIS 1.1.3-1.1.18 wants watched (the data-root moved to /srv).
AUDITED = {
    "dockerd": "/usr/sbin/dockerd",
    "run_containerd": "/run/containerd",
    "data_root": "/srv/docker",
    "etc_docker": "/etc/docker",
    "docker_service": "/lib/systemd/system/docker.service",
    "containerd_sock": "/run/containerd/containerd.sock",
    "docker_socket": "/lib/systemd/system/docker.socket",
    "default_docker": "/etc/default/docker",
    "daemon_json": "/etc/docker/daemon.json",
    "containerd_config": "/etc/containerd/config.toml",
    "sysconfig_docker": "/etc/sysconfig/docker",
    "containerd": "/usr/bin/containerd",
    "containerd_shim": "/usr/bin/containerd-shim",
    "containerd_shim_runc_v1": "/usr/bin/containerd-shim-runc-v1",
    "containerd_shim_runc_v2": "/usr/bin/containerd-shim-runc-v2",
    "runc": "/usr/sbin/runc",
}


def _audit_rules(rules=None, source="auditctl", missing=()):
    """The audit_rules fact: each target watched by a rule on itself unless ``rules`` says."""
    rules = [[path, False] for path in AUDITED.values()] if rules is None else rules
    targets = {}
    for name, path in AUDITED.items():
        exists = name not in missing
        covering = [r[0] for r in rules if r[0] == path or path.startswith(r[0] + "/")]
        targets[name] = {
            "path": path,
            "exists": exists,
            "covered_by": covering[0] if exists and covering else None,
        }
    return {"source": source, "files": [], "rules": rules, "targets": targets}


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
    "userns_remap": {
        "enabled": True,
        "engine": True,
        "setting": "default",
        "configured_in": "daemon.json /etc/docker/daemon.json",
        "user": "dockremap",
        "group": "dockremap",
        "uid": 100000,
        "gid": 100000,
        "remapped_root": "/srv/docker/100000.100000",
        "remapped_root_source": "engine",
        "blocked_by": None,
        "problem": None,
    },
    "audit_rules": _audit_rules(),
    "mounts": {
        "checked": True,
        "ok": True,
        "problem": None,
        "summary": {"containers": 2, "with_problems": 0},
        "problems": [],
        "host_mounts": [],
        "deepest_images": [{"image": "web:1", "id": "0123456789ab", "layers": 7}],
    },
    "permissions": {
        "etc_docker": _perm("/etc/docker", "0755"),
        "daemon_json": _perm("/etc/docker/daemon.json", "0644"),
        "data_root": _perm("/srv/docker", "0710"),
        "docker_service": _perm("/lib/systemd/system/docker.service", "0644"),
        "docker_socket_unit": _perm("/lib/systemd/system/docker.socket", "0644"),
        "docker_sock": _perm("/run/docker.sock", "0660", gid=995, group="docker"),
        "default_docker": _perm("/etc/default/docker", "0644"),
        "sysconfig_docker": _perm("/etc/sysconfig/docker", "0600"),
        "containerd_sock": _perm("/run/containerd/containerd.sock", "0660"),
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
            {
                "permissions__docker_service": _perm(
                    "/etc/systemd/system/docker.service", "0644", 1000
                )
            },
            [("docker_service_owner", "3.1", "fail")],
        ),
        (
            {"permissions__docker_service": _perm("/lib/systemd/system/docker.service", "0664")},
            [("docker_service_mode", "3.2", "fail")],
        ),
        (
            {
                "permissions__docker_socket_unit": _perm(
                    "/lib/systemd/system/docker.socket", "0644", 0, 4
                )
            },
            [("docker_socket_unit_owner", "3.3", "fail")],
        ),
        (
            {"permissions__docker_socket_unit": _perm("/lib/systemd/system/docker.socket", "0646")},
            [("docker_socket_unit_mode", "3.4", "fail")],
        ),
        (
            {"permissions__docker_sock": _perm("/run/docker.sock", "0660", gid=50, group="staff")},
            [("docker_sock_owner", "3.15", "fail")],
        ),
        (
            {
                "permissions__docker_sock": _perm(
                    "/run/docker.sock", "0666", gid=995, group="docker"
                )
            },
            [("docker_sock_mode", "3.16", "fail")],
        ),
        (
            {"permissions__default_docker": _perm("/etc/default/docker", "0644", 1000, 1000)},
            [("default_docker_owner", "3.19", "fail")],
        ),
        (
            {"permissions__default_docker": _perm("/etc/default/docker", "0755")},
            [("default_docker_mode", "3.20", "fail")],
        ),
        (
            {"permissions__sysconfig_docker": _perm("/etc/sysconfig/docker", "0644", 0, 10)},
            [("sysconfig_docker_owner", "3.21", "fail")],
        ),
        (
            {"permissions__sysconfig_docker": _perm("/etc/sysconfig/docker", "0664")},
            [("sysconfig_docker_mode", "3.22", "fail")],
        ),
        (
            # containerd's socket is root:root: the docker group does not pass here.
            {
                "permissions__containerd_sock": _perm(
                    "/run/containerd/containerd.sock", "0660", gid=995, group="docker"
                )
            },
            [("containerd_sock_owner", "3.23", "fail")],
        ),
        (
            {"permissions__containerd_sock": _perm("/run/containerd/containerd.sock", "0666")},
            [("containerd_sock_mode", "3.24", "fail")],
        ),
        (
            # Root alone is stricter than root:docker.
            {"permissions__docker_sock": _perm("/run/docker.sock", "0600")},
            [],
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
        "3.1-owner",
        "3.2-mode",
        "3.3-owner",
        "3.4-mode",
        "3.15-owner",
        "3.16-mode",
        "3.19-owner",
        "3.20-mode",
        "3.21-owner",
        "3.22-mode",
        "3.23-owner",
        "3.24-mode",
        "docker-sock-root-only",
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


def test_a_file_the_host_does_not_have_is_skipped_with_its_name():
    facts = facts_with(
        permissions__docker_socket_unit=_perm(None, None, exists=False),
        permissions__sysconfig_docker=_perm("/etc/sysconfig/docker", None, exists=False),
    )
    results = {r["check"]: r for r in _audit_policy.evaluate(facts)}
    for check in ("docker_socket_unit_owner", "docker_socket_unit_mode"):
        assert results[check]["status"] == "skipped"
        assert results[check]["message"] == "the unit file docker.socket was not found on this host"
    assert results["sysconfig_docker_mode"]["message"] == (
        "the environment file /etc/sysconfig/docker does not exist"
    )
    assert _audit_policy.findings(list(results.values())) == []


def test_a_fact_without_the_daemon_files_skips_their_checks():
    facts = copy.deepcopy(HEALTHY)
    del facts["permissions"]["docker_sock"]
    results = {r["check"]: r for r in _audit_policy.evaluate(facts)}
    assert results["docker_sock_owner"]["status"] == "skipped"
    assert results["docker_sock_owner"]["message"] == "the Docker socket was not examined"
    assert results["containerd_sock_owner"]["status"] == "pass"


def _host_mount(check, source, destination, rw=False, propagation=None):
    return {
        "check": check,
        "container": "web",
        "source": source,
        "destination": destination,
        "rw": rw,
        "propagation": propagation,
    }


@pytest.mark.parametrize(
    "mount, expected, message",
    [
        (
            _host_mount("sensitive_host_mount", "/etc", "/host/etc", rw=True),
            ("sensitive_host_mount", "5.6", "fail"),
            "web mounts /etc at /host/etc (read-write)",
        ),
        (
            _host_mount("shared_mount_propagation", "/srv/data", "/data", propagation="rshared"),
            ("shared_mount_propagation", "5.20", "warn"),
            "web mounts /srv/data at /data (read-only, propagation rshared)",
        ),
        (
            _host_mount("socket_mounted", "/run/docker.sock", "/var/run/docker.sock", rw=True),
            ("socket_mounted", "5.32", "fail"),
            "web mounts /run/docker.sock at /var/run/docker.sock (read-write)",
        ),
    ],
    ids=["5.6", "5.20", "5.32"],
)
def test_a_container_mount_that_exposes_the_host_is_its_finding(mount, expected, message):
    results = _audit_policy.evaluate(facts_with(mounts__host_mounts=[mount]))
    assert [(r["check"], r["cis"], r["status"]) for r in _audit_policy.findings(results)] == [
        expected
    ]
    finding = _audit_policy.findings(results)[0]
    assert finding["message"] == message
    assert finding["evidence"] == {"mounts": [mount]}


def test_container_mount_checks_are_skipped_when_the_engine_was_not_asked():
    facts = facts_with(mounts={"checked": False, "problem": "the Engine API did not answer"})
    results = {r["check"]: r for r in _audit_policy.evaluate(facts)}
    for check in ("sensitive_host_mount", "shared_mount_propagation", "socket_mounted"):
        assert (results[check]["status"], results[check]["message"]) == (
            "skipped",
            "the Engine API did not answer",
        )


@pytest.mark.parametrize(
    "layers, policy, status, message",
    [
        (99, None, None, "no image has 100 layers or more"),
        (
            100,
            None,
            "warn",
            "image app:2 has 100 layers (25 more before dockerd's limit of 125); squash it, or "
            "build it in fewer steps",
        ),
        (
            124,
            None,
            "warn",
            "image app:2 has 124 layers (1 more before dockerd's limit of 125); squash it, or "
            "build it in fewer steps",
        ),
        (
            125,
            None,
            "fail",
            "image app:2 has 125 layers (dockerd stops at 125 per chain, 'max depth exceeded': "
            "nothing can be built on it); squash it, or build it in fewer steps",
        ),
        (
            7,
            {"warn_layer_depth": 7},
            "warn",
            "image app:2 has 7 layers (118 more before dockerd's limit of 125); squash it, or "
            "build it in fewer steps",
        ),
    ],
    ids=["under", "at-warn", "one-below-limit", "at-limit", "policy"],
)
def test_an_image_near_dockers_layer_limit_is_named(layers, policy, status, message):
    images = [{"image": "app:2", "id": "fedcba987654", "layers": layers}]
    results = _audit_policy.evaluate(facts_with(mounts__deepest_images=images), policy)
    [check] = [r for r in results if r["check"] == "layer_depth"]
    assert (check["status"], check["message"]) == (status or "pass", message)


@pytest.mark.parametrize("value", [0, 126, 2.5, "many", True])
def test_a_layer_depth_policy_outside_the_engines_range_is_refused(value):
    with pytest.raises(_audit_policy.PolicyError, match="policy key warn_layer_depth must be"):
        _audit_policy.check_policy({"warn_layer_depth": value})


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"daemon_json__storage_opts": ["dm.thinpooldev=/dev/mapper/pool", "dm.basesize=20G"]},
            "the base device size is changed: dm.basesize=20G in /etc/docker/daemon.json; keep "
            "the default unless a container needs more, and grow it then",
        ),
        (
            {
                "flags__findings": [
                    {
                        "key": "storage-opts",
                        "flag": "--storage-opt",
                        "value": "dm.basesize=50G",
                        "where": "/etc/systemd/system/docker.service.d/opts.conf:3",
                    }
                ]
            },
            "the base device size is changed: --storage-opt dm.basesize=50G in "
            "/etc/systemd/system/docker.service.d/opts.conf:3; keep the default unless a "
            "container needs more, and grow it then",
        ),
        ({"daemon_json__storage_opts": ["overlay2.size=20G"]}, None),
    ],
    ids=["daemon-json", "flag", "other-option"],
)
def test_a_changed_base_device_size_is_a_warning(changes, message):
    results = {r["check"]: r for r in _audit_policy.evaluate(facts_with(**changes))}
    check = results["base_device_size"]
    assert check["cis"] == "2.11"
    if message is None:
        assert (check["status"], check["message"]) == ("pass", "dm.basesize is not set")
    else:
        assert (check["status"], check["message"]) == ("warn", message)


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


def test_a_rule_on_the_default_data_root_does_not_cover_one_that_lives_elsewhere():
    rules = [[path, False] for name, path in AUDITED.items() if name != "data_root"]
    rules.append(["/var/lib/docker", True])
    results = _audit_policy.evaluate(facts_with(audit_rules=_audit_rules(rules)))
    assert [
        (f["check"], f["cis"], f["status"], f["message"]) for f in _audit_policy.findings(results)
    ] == [
        (
            "audit_data_root",
            "1.1.5",
            "warn",
            "no audit rule watches the data-root /srv/docker (the rule on /var/lib/docker does "
            "not cover it): add -w /srv/docker -p rwxa -k docker",
        )
    ]


def test_a_directory_rule_covers_what_is_below_it():
    rules = [[path, False] for name, path in AUDITED.items() if name != "daemon_json"]
    rules.append(["/etc/docker", True])
    results = {
        r["check"]: r for r in _audit_policy.evaluate(facts_with(audit_rules=_audit_rules(rules)))
    }
    assert results["audit_daemon_json"]["status"] == "pass"
    assert results["audit_daemon_json"]["message"] == (
        "daemon.json /etc/docker/daemon.json is watched by the audit rule on /etc/docker"
    )


def test_without_audit_rules_or_the_file_the_checks_are_skipped():
    facts = facts_with(audit_rules=_audit_rules([], source=None, missing=("containerd_shim",)))
    results = {r["check"]: r for r in _audit_policy.evaluate(facts)}
    assert results["audit_dockerd"]["status"] == "skipped"
    assert results["audit_dockerd"]["message"] == (
        "no audit rules on this host (auditctl lists none and /etc/audit holds none): install "
        "auditd to watch the Docker daemon /usr/sbin/dockerd"
    )
    assert results["audit_containerd_shim"]["message"] == (
        "containerd-shim /usr/bin/containerd-shim does not exist"
    )
    assert _audit_policy.findings(list(results.values())) == []


@pytest.mark.parametrize("value", [110, 110.0, "110"])
def test_a_layer_depth_policy_may_come_templated_as_text_or_a_float(value):
    assert _audit_policy.check_policy({"warn_layer_depth": value})["warn_layer_depth"] == 110


def test_without_docker_containerd_and_the_audit_rules_are_not_judged():
    facts = facts_with(
        docker={"state": "absent", "reason": "dockerd is not installed"},
        permissions__containerd_sock=_perm("/run/containerd/containerd.sock", "0666"),
        audit_rules=_audit_rules([]),
    )
    results = {r["check"]: r for r in _audit_policy.evaluate(facts)}
    for check in ("containerd_sock_mode", "audit_containerd", "audit_runc"):
        assert (results[check]["status"], results[check]["message"]) == (
            "skipped",
            "Docker is not installed here",
        )
    assert [f["check"] for f in _audit_policy.findings(list(results.values()))] == []


USERNS_OFF = {
    "enabled": False,
    "engine": False,
    "setting": None,
    "configured_in": None,
    "user": None,
    "group": None,
    "uid": None,
    "gid": None,
    "remapped_root": None,
    "remapped_root_source": None,
    "blocked_by": None,
    "problem": None,
}


def test_user_namespace_remapping_on_passes_and_names_the_remapped_root():
    result = _result(copy.deepcopy(HEALTHY), "userns_remap")
    assert (result["cis"], result["status"]) == ("2.9", "pass")
    assert result["message"] == (
        "user namespace remapping is on (daemon.json /etc/docker/daemon.json): the containers' "
        "root is 100000:100000 on the host, and the engine keeps its storage in "
        "/srv/docker/100000.100000"
    )


def test_user_namespace_remapping_off_is_a_warning_as_cis_scores_it():
    facts = facts_with(userns_remap=USERNS_OFF)
    assert found(facts) == [("userns_remap", "2.9", "warn")]
    message = _result(facts, "userns_remap")["message"]
    assert message.startswith("user namespace remapping is off: the containers' root is root")
    assert "/srv/docker/<uid>.<gid>" in message
    assert "without the current images and containers" in message
    # A policy may make it a failure, or skip it.
    assert found(facts, {"severity": {"userns_remap": "fail"}}) == [("userns_remap", "2.9", "fail")]
    assert found(facts, {"skip": ["userns_remap"]}) == []


def test_userns_remap_set_but_not_in_force_says_a_restart_moves_the_store():
    remap = dict(
        HEALTHY["userns_remap"], enabled=False, engine=False, remapped_root_source="subuid"
    )
    facts = facts_with(userns_remap=remap)
    assert found(facts) == [("userns_remap", "2.9", "warn")]
    assert _result(facts, "userns_remap")["message"] == (
        "userns-remap is set (daemon.json /etc/docker/daemon.json) but the running engine does "
        "not use it: restart dockerd; it then keeps its storage in /srv/docker/100000.100000 and "
        "starts without the current images and containers"
    )


@pytest.mark.parametrize("enabled", [True, False])
def test_a_directory_the_remapped_root_cannot_traverse_fails_as_dockerd_refuses(enabled):
    remap = dict(HEALTHY["userns_remap"], enabled=enabled, blocked_by="/srv")
    facts = facts_with(userns_remap=remap)
    # Even where the policy asks for a warning: dockerd does not start.
    for policy in (None, {"severity": {"userns_remap": "warn"}}):
        assert found(facts, policy) == [("userns_remap", "2.9", "fail")]
    result = _result(facts, "userns_remap")
    assert "cannot traverse /srv: dockerd refuses to start" in result["message"]
    assert result["message"].endswith("chmod o+x /srv")
    assert result["evidence"]["blocked_by"] == "/srv"


@pytest.mark.parametrize(
    "changes",
    [
        {"engine__image_store": "containerd"},
        {"daemon_json__containerd_snapshotter": True},
    ],
)
def test_userns_remap_with_the_containerd_store_passes_and_says_images_are_kept_twice(changes):
    # dockerd 26.1 and 28.5 start, load images and run containers with both (measured).
    facts = facts_with(**changes)
    result = _result(facts, "userns_remap")
    assert result["status"] == "pass"
    assert "features.containerd-snapshotter" in result["message"]
    assert "unpacked twice, as pulled and chowned to the remapped root" in result["message"]


def test_userns_remap_is_skipped_without_the_fact_or_without_docker():
    facts = copy.deepcopy(HEALTHY)
    del facts["userns_remap"]
    assert _result(facts, "userns_remap")["status"] == "skipped"
    assert _result(facts, "userns_remap")["message"] == (
        "user namespace remapping was not examined"
    )
    absent = facts_with(docker={"state": "absent", "reason": "no data-root"})
    assert _result(absent, "userns_remap")["status"] == "skipped"


def test_a_remapped_root_that_is_not_known_says_why():
    remap = dict(
        HEALTHY["userns_remap"],
        engine=None,
        uid=None,
        gid=None,
        remapped_root=None,
        remapped_root_source=None,
        problem="user dockremap has no range in /etc/subuid",
    )
    result = _result(facts_with(userns_remap=remap), "userns_remap")
    assert result["status"] == "pass"
    assert result["message"].endswith(
        "the remapped root is not known: user dockremap has no range in /etc/subuid"
    )
