"""storage_facts through ansible: a host without Docker, a bad policy, and who fills the disk
of a running engine."""

from __future__ import annotations

import grp
import json
import os
import socket

import pytest
from ansible_module import run_module
from daemon_json_corpus import CASES, read_bad_file
from harness import BUSYBOX, import_image
from test_without_docker import WITHOUT_DOCKERD

pytestmark = pytest.mark.integration


def facts_without_docker(tmp_path, **options):
    """storage_facts in check mode where dockerd is not installed, on paths under ``tmp_path``
    that ``options`` may replace; the task's result."""
    args = {
        "data_root": str(tmp_path / "docker"),
        "config_path": str(tmp_path / "etc" / "docker" / "daemon.json"),
        "containerd_root": str(tmp_path / "containerd"),
        "host_root": str(tmp_path),
        "probe": False,
    }
    args.update(options)
    return run_module("storage_facts", args, check=True, wrapper=WITHOUT_DOCKERD)


def test_host_without_docker_is_a_state_not_a_failure(tmp_path):
    result = facts_without_docker(tmp_path, probe=True)
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
    result = facts_without_docker(tmp_path, config_path=str(config_path))
    assert not result.get("failed"), result.get("msg")
    assert "Traceback" not in json.dumps(result)
    facts = result["ansible_facts"]["docker_storage"]
    problem = facts["daemon_json"]["problem"]
    assert problem.startswith("%s " % config_path), problem
    for phrase in CASES[name].phrases:
        assert phrase in problem
    check = next(c for c in facts["checks"] if c["check"] == "daemon_json_valid")
    assert (check["status"], check["message"]) == ("fail", problem)


def _bound_socket(path, mode, uid=0, gid=0):
    """A real unix socket at ``path`` with the owner and mode given, listening."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return listener


def test_daemon_files_and_sockets_are_judged_where_the_host_keeps_them(tmp_path):
    """CIS 3.1-3.4 and 3.15-3.24 on the files a host really has: the unit files in systemd's
    search path under the tree, the socket the Engine API is asked on, and containerd's socket
    named by the [grpc] address of its configuration, not the default paths."""
    host = tmp_path / "host"
    units = host / "usr" / "lib" / "systemd" / "system"
    units.mkdir(parents=True)
    (units / "docker.service").write_text("[Service]\nExecStart=/usr/bin/dockerd\n")
    (units / "docker.socket").write_text("[Socket]\nListenStream=/run/docker.sock\n")
    # Written by a user who is not root, and writable by its group.
    os.chown(units / "docker.service", 65534, 65534)
    os.chmod(units / "docker.socket", 0o664)
    (host / "etc" / "sysconfig").mkdir(parents=True)
    (host / "etc" / "sysconfig" / "docker").write_text("OPTIONS=''\n")
    sockets = tmp_path / "run"
    sockets.mkdir()
    engine = _bound_socket(sockets / "engine.sock", 0o666, gid=grp.getgrnam("docker").gr_gid)
    containerd = _bound_socket(sockets / "containerd.sock", 0o660)
    config = tmp_path / "containerd.toml"
    config.write_text('version = 2\n[grpc]\n  address = "%s"\n' % (sockets / "containerd.sock"))
    # Docker installed and stopped (its data-root is there): containerd's socket is its own.
    (tmp_path / "docker").mkdir()
    try:
        result = facts_without_docker(
            tmp_path,
            config_path=str(host / "etc" / "docker" / "daemon.json"),
            containerd_config=str(config),
            docker_host="unix://%s" % (sockets / "engine.sock"),
            host_root=str(host),
        )
    finally:
        engine.close()
        containerd.close()
    assert not result.get("failed"), result.get("msg")
    checks = {c["check"]: c for c in result["ansible_facts"]["docker_storage"]["checks"]}
    seen = {
        name: (checks[name]["cis"], checks[name]["status"])
        for name in checks
        if checks[name]["cis"] in {"3.%d" % n for n in (1, 2, 3, 4, *range(15, 25))}
    }
    assert seen == {
        "docker_service_owner": ("3.1", "fail"),
        "docker_service_mode": ("3.2", "pass"),
        "docker_socket_unit_owner": ("3.3", "pass"),
        "docker_socket_unit_mode": ("3.4", "fail"),
        "docker_sock_owner": ("3.15", "pass"),
        "docker_sock_mode": ("3.16", "fail"),
        "daemon_json_owner": ("3.17", "skipped"),
        "daemon_json_mode": ("3.18", "skipped"),
        "default_docker_owner": ("3.19", "skipped"),
        "default_docker_mode": ("3.20", "skipped"),
        "sysconfig_docker_owner": ("3.21", "pass"),
        "sysconfig_docker_mode": ("3.22", "pass"),
        "containerd_sock_owner": ("3.23", "pass"),
        "containerd_sock_mode": ("3.24", "pass"),
    }
    assert checks["docker_service_owner"]["message"] == (
        "the unit file docker.service /usr/lib/systemd/system/docker.service is owned by "
        "nobody:nogroup, not root:root: chown root:root it"
    )
    assert checks["docker_socket_unit_mode"]["message"] == (
        "the unit file docker.socket /usr/lib/systemd/system/docker.socket has mode 0664, "
        "looser than 0644: chmod 0644 it"
    )
    assert checks["docker_sock_mode"]["message"] == (
        "the Docker socket %s has mode 0666, looser than 0660: chmod 0660 it"
        % (sockets / "engine.sock")
    )
    assert checks["containerd_sock_owner"]["evidence"]["path"] == str(sockets / "containerd.sock")
    assert checks["default_docker_mode"]["message"] == (
        "the environment file /etc/default/docker does not exist"
    )


def test_a_changed_base_device_size_in_daemon_json_is_a_warning(tmp_path):
    config_path = tmp_path / "daemon.json"
    config_path.write_text(
        json.dumps({"storage-driver": "devicemapper", "storage-opts": ["dm.basesize=20G"]})
    )
    result = facts_without_docker(tmp_path, config_path=str(config_path))
    assert not result.get("failed"), result.get("msg")
    facts = result["ansible_facts"]["docker_storage"]
    [check] = [c for c in facts["checks"] if c["check"] == "base_device_size"]
    assert (check["cis"], check["status"]) == ("2.11", "warn")
    assert check["message"].startswith(
        "the base device size is changed: dm.basesize=20G in %s;" % config_path
    )
    assert check in facts["findings"]


def test_audit_rules_that_watch_the_default_paths_miss_the_moved_data_root(tmp_path):
    """CIS 1.1.3-1.1.18 from a host's rule files: the rules watch dockerd and the default
    data-root; the data-root this host uses lives elsewhere, and the finding says so."""
    host = tmp_path / "host"
    for path in ("usr/sbin/dockerd", "usr/bin/containerd", "var/lib/docker/.keep"):
        (host / path).parent.mkdir(parents=True, exist_ok=True)
        (host / path).write_text("")
    rules = host / "etc" / "audit" / "rules.d" / "docker.rules"
    rules.parent.mkdir(parents=True)
    rules.write_text(
        "-w /usr/sbin/dockerd -p rwxa -k docker\n-w /var/lib/docker -p rwxa -k docker\n"
    )
    data_root = tmp_path / "srv-docker"
    data_root.mkdir()
    result = facts_without_docker(
        tmp_path,
        data_root=str(data_root),
        config_path=str(host / "etc" / "docker" / "daemon.json"),
        containerd_config=str(host / "etc" / "containerd" / "config.toml"),
        host_root=str(host),
    )
    assert not result.get("failed"), result.get("msg")
    facts = result["ansible_facts"]["docker_storage"]
    assert facts["audit_rules"]["source"] == "files"
    assert facts["audit_rules"]["files"] == [str(rules)]
    checks = {c["check"]: c for c in facts["checks"]}
    assert (checks["audit_dockerd"]["cis"], checks["audit_dockerd"]["status"]) == ("1.1.3", "pass")
    assert checks["audit_data_root"]["cis"] == "1.1.5"
    assert (checks["audit_data_root"]["status"], checks["audit_data_root"]["message"]) == (
        "warn",
        "no audit rule watches the data-root %s (the rule on /var/lib/docker does not cover "
        "it): add -w %s -p rwxa -k docker" % (data_root, data_root),
    )
    assert checks["audit_containerd"]["status"] == "warn"
    # Not on this host: skipped, never a finding.
    assert checks["audit_runc"]["status"] == "skipped"
    assert checks["audit_daemon_json"]["status"] == "skipped"
    audit_findings = {f["check"] for f in facts["findings"] if f["check"].startswith("audit_")}
    assert audit_findings == {"audit_data_root", "audit_containerd"}


@pytest.fixture(params=["20.10", "28.5 containerd store"])
def engine_with_busybox(request, make_loopfs, start_dockerd, busybox_image, tmp_path):
    """A running private dockerd with the busybox image: the host's 20.10 (overlay2), or the
    real 28.5 with the containerd image store."""
    if request.param == "20.10":
        return request.getfixturevalue("busybox_dockerd")
    fs = make_loopfs("ext4", size_mb=512)
    config = tmp_path / "engine-daemon.json"
    config.write_text(json.dumps({"features": {"containerd-snapshotter": True}}))
    daemon = start_dockerd(
        os.path.join(fs.mount_point, "docker"),
        engine=request.getfixturevalue("forky_engine"),
        config_file=str(config),
    )
    daemon.assert_started()
    import_image(daemon, busybox_image)
    return daemon


def test_who_fills_the_disk_names_the_containers_and_images_that_do(engine_with_busybox, tmp_path):
    """A container that wrote 3 MiB into its writable layer, one whose log holds about 4 MB,
    and an image committed from the first: ranked by what they hold, with the log's size as
    the file on disk has it."""
    engine = engine_with_busybox
    run_args = ("run", "--network", "none", "--log-driver", "json-file", "--name")
    engine.docker(*run_args, "writer", BUSYBOX.name, "dd", "if=/dev/zero", "of=/fill", "bs=1M",
                  "count=3")  # fmt: skip
    engine.docker(*run_args, "talker", BUSYBOX.name, "sh", "-c",
                  "yes 0123456789 | head -n 50000")  # fmt: skip
    engine.docker("commit", "writer", "fat:1")
    options = {
        "docker_host": "unix://" + engine.socket,
        "config_path": engine.config_file,
        "host_root": str(tmp_path),
        "probe": False,
    }
    result = run_module("storage_facts", options, check=True)
    assert not result.get("failed"), result.get("msg")
    users = result["ansible_facts"]["docker_storage"]["disk_users"]
    assert users["checked"] is True, users["problem"]
    log_path = json.loads(engine.docker("inspect", "talker").stdout)[0]["LogPath"]
    talker, writer = users["containers"]
    assert (talker["name"], talker["log_bytes"]) == ("talker", os.stat(log_path).st_size)
    assert talker["log_bytes"] > 3_000_000
    assert writer["name"] == "writer"
    assert 3 * 2**20 <= writer["writable_bytes"] < 3 * 2**20 + 2**16
    images = {image["image"]: image for image in users["images"]}
    assert users["images"][0]["image"] == "fat:1"
    unique = images["fat:1"]["unique_bytes"]
    base = images[BUSYBOX.name]
    assert base["containers"] == 2
    if engine.engine is None:
        assert 3 * 2**20 <= unique < 3 * 2**20 + 2**16
        assert base["unique_bytes"] == 0  # all of it shared with fat:1
    else:
        # The containerd store counts an image's content blobs besides its unpacked snapshots,
        # and only the snapshots are shared: busybox keeps its layer blob (1,084,966 bytes
        # measured), fat:1 its own besides the 3 MiB (4,262,051 in all).
        assert 3 * 2**20 <= unique < 5 * 2**20
        assert 0 < base["unique_bytes"] < unique
    assert users["totals"]["containers"] == 2
    # Not asked: the engine's disk usage is not computed.
    options["disk_users"] = 0
    quiet = run_module("storage_facts", options, check=True)
    assert quiet["ansible_facts"]["docker_storage"]["disk_users"] == {
        "checked": False,
        "problem": "not asked for (disk_users: 0)",
    }
    options["disk_users"] = -1
    refused = run_module("storage_facts", options, check=True)
    assert refused.get("failed") is True
    assert refused["msg"].startswith("disk_users must be 0 (do not ask the engine) or how many")
