"""dockerd flags where real hosts put them, through the modules: an Environment= drop-in with
grouped single-letter flags (a private dockerd reads them the same way), and a --config-file
flag that makes edits of daemon.json pointless, refused by daemon_config and data_root and
reported by storage_facts.

The unit trees are written under each test's temporary directory and handed over as
``host_root``; data_root reads the host's own /etc/systemd/system, so its test runs in a
private mount namespace with a directory of its own bound there.
"""

from __future__ import annotations

import json
import os

import pytest
from ansible_module import run_module
from test_without_docker import WITHOUT_DOCKERD

pytestmark = pytest.mark.integration

DEBIAN_UNIT = """[Unit]
Description=Docker Application Container Engine

[Service]
Type=notify
EnvironmentFile=-/etc/default/docker
ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS
ExecReload=/bin/kill -s HUP $MAINPID

[Install]
WantedBy=multi-user.target
"""
DROP_IN_DIR = "etc/systemd/system/docker.service.d"
CONFIG_FILE_DROP_IN = (
    "[Service]\n"
    "ExecStart=\n"
    "ExecStart=/usr/sbin/dockerd -H fd:// --config-file /etc/docker/storage.json\n"
)


def write_tree(root, files):
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return str(root)


def read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def test_grouped_flags_in_an_environment_drop_in_conflict_like_dockerd_says(
    tmp_path, start_dockerd
):
    host_root = write_tree(
        tmp_path / "host",
        {
            "lib/systemd/system/docker.service": DEBIAN_UNIT,
            DROP_IN_DIR + "/storage.conf": '[Service]\nEnvironment="DOCKER_OPTS=-Ds vfs"\n',
        },
    )
    path = str(tmp_path / "daemon.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"deprecated-key-path": str(tmp_path / "key.json")}, handle)
    before = read_bytes(path)
    result = run_module(
        "daemon_config",
        {
            "config_path": path,
            "storage_driver": "overlay2",
            "support_check": False,
            "host_root": host_root,
        },
    )
    assert result.get("failed") is True, result
    assert (
        'storage-driver is set in daemon.json ("overlay2") and as the dockerd flag -s vfs in '
        "/etc/systemd/system/docker.service.d/storage.conf:2" in result["msg"]
    )
    assert result["flags"][0]["variable"] == "DOCKER_OPTS"
    assert read_bytes(path) == before

    # dockerd reads "-Ds vfs" as "-D -s vfs" and refuses the same file with the driver in it.
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(
            {"deprecated-key-path": str(tmp_path / "key.json"), "storage-driver": "overlay2"},
            handle,
        )
    data_root = tmp_path / "docker"
    daemon = start_dockerd(data_root, extra_args=("-Ds", "vfs"), config_file=path)
    assert not daemon.started, "dockerd started with -Ds vfs and storage-driver in the file"
    assert "specified both as a flag and in the configuration file" in daemon.refusal
    assert "storage-driver: (from flag: vfs, from file: overlay2)" in daemon.refusal


def test_daemon_config_refuses_a_file_dockerd_does_not_read(tmp_path):
    host = tmp_path / "host"
    host_root = write_tree(
        host,
        {
            "lib/systemd/system/docker.service": DEBIAN_UNIT,
            DROP_IN_DIR + "/config.conf": CONFIG_FILE_DROP_IN,
        },
    )
    path = str(tmp_path / "daemon.json")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write('{"debug": true}\n')
    wanted = {
        "config_path": path,
        "storage_driver": "vfs",
        "support_check": False,
        "host_root": host_root,
    }
    in_force = str(host / "etc" / "docker" / "storage.json")
    for check in (True, False):
        result = run_module("daemon_config", wanted, check=check)
        assert result.get("failed") is True, result
        assert result["msg"] == (
            "dockerd reads its configuration from /etc/docker/storage.json (--config-file "
            "/etc/docker/storage.json in /etc/systemd/system/docker.service.d/config.conf:3), "
            "not from %s, so a change to %s would have no effect: set config_path to %s, or remove "
            "the flag first" % (path, path, in_force)
        )
        assert read_bytes(path) == b'{"debug": true}\n'
    assert not os.path.exists(in_force)

    # The file dockerd reads is edited.
    result = run_module("daemon_config", dict(wanted, config_path=in_force))
    assert result.get("changed") is True, result
    assert json.loads(read_bytes(in_force)) == {"storage-driver": "vfs"}


def test_data_root_refuses_to_switch_a_file_dockerd_does_not_read(tmp_path):
    units = tmp_path / "systemd-system"
    write_tree(units, {"docker.service.d/config.conf": CONFIG_FILE_DROP_IN})
    source = tmp_path / "source"
    source.mkdir()
    config_path = str(tmp_path / "daemon.json")
    with open(config_path, "w", encoding="utf-8") as handle:
        json.dump({"data-root": str(source), "storage-driver": "vfs"}, handle)
    # Static text; the units directory and the module's argv follow.
    with_units = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount --bind "$0" /etc/systemd/system && exec "$@"',
        str(units),
    ]
    result = run_module(
        "data_root",
        {
            "path": str(tmp_path / "target"),
            "config_path": config_path,
            "docker_host": "unix://%s" % (tmp_path / "no-engine.sock"),
        },
        check=True,
        wrapper=with_units,
    )
    assert result.get("failed") is True, result
    assert result["msg"].startswith(
        "dockerd reads its configuration from /etc/docker/storage.json (--config-file "
        "/etc/docker/storage.json in /etc/systemd/system/docker.service.d/config.conf:3), "
        "not from %s" % config_path
    ), result["msg"]
    assert "set config_path to /etc/docker/storage.json" in result["msg"]
    assert not os.path.exists(str(tmp_path / "target"))


def test_storage_facts_reports_the_config_file_dockerd_reads(tmp_path):
    host_root = write_tree(
        tmp_path / "host",
        {
            "lib/systemd/system/docker.service": DEBIAN_UNIT,
            DROP_IN_DIR + "/config.conf": CONFIG_FILE_DROP_IN,
        },
    )
    config_path = str(tmp_path / "daemon.json")
    result = run_module(
        "storage_facts",
        {
            "data_root": str(tmp_path / "docker"),
            "config_path": config_path,
            "containerd_root": str(tmp_path / "containerd"),
            "host_root": host_root,
            "probe": False,
        },
        check=True,
        wrapper=WITHOUT_DOCKERD,
    )
    assert not result.get("failed"), result.get("msg")
    flags = result["ansible_facts"]["docker_storage"]["flags"]
    assert flags["config_file"]["value"] == "/etc/docker/storage.json"
    assert flags["config_file"]["where"] == "/etc/systemd/system/docker.service.d/config.conf:3"
    assert flags["source"] == "files"
    assert len(flags["conflicts"]) == 1
    assert flags["conflicts"][0].startswith(
        "dockerd reads its configuration from /etc/docker/storage.json"
    )
    assert "not from %s" % config_path in flags["conflicts"][0]
