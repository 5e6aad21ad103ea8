"""Where the daemon's files and sockets are found: the unit files systemd loaded or the first in
its search path, containerd's socket from its configuration."""

from __future__ import annotations

import os

from ansible_collections.dockerhost.storage.plugins.module_utils._daemon_files import (
    DEFAULT_CONTAINERD_SOCKET,
    containerd_socket,
    daemon_files,
    unit_file,
)


def _touch(root, path, mode=0o644):
    full = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as handle:
        handle.write("[Unit]\n")
    os.chmod(full, mode)
    return full


def test_containerd_socket_is_the_grpc_address_of_its_configuration():
    text = (
        'version = 2\nroot = "/srv/containerd"\n'
        '[debug]\n  address = "/run/containerd/debug.sock"\n'
        "[grpc]\n  # where clients connect\n  address = 'unix:///srv/run/containerd.sock'  # moved\n"
        '[ttrpc]\n  address = "/run/containerd/ttrpc.sock"\n'
    )
    assert containerd_socket(text) == "/srv/run/containerd.sock"


def test_containerd_socket_defaults_without_a_grpc_address():
    assert containerd_socket(None) == DEFAULT_CONTAINERD_SOCKET
    assert containerd_socket('[debug]\naddress = "/x.sock"\n') == DEFAULT_CONTAINERD_SOCKET


def test_unit_file_is_the_one_systemd_loaded():
    answer = "LoadState=loaded\nFragmentPath=/usr/lib/systemd/system/docker.socket\n"
    assert unit_file("docker.socket", "/nonexistent", answer) == (
        "/usr/lib/systemd/system/docker.socket"
    )


def test_unit_file_without_systemd_is_the_first_in_its_search_path(tmp_path):
    root = str(tmp_path)
    _touch(root, "/lib/systemd/system/docker.socket")
    assert unit_file("docker.socket", root) == "/lib/systemd/system/docker.socket"
    _touch(root, "/etc/systemd/system/docker.socket")
    assert unit_file("docker.socket", root) == "/etc/systemd/system/docker.socket"
    # Where systemd answers, it is the truth: a unit it does not know is not in use.
    assert unit_file("docker.socket", root, "LoadState=not-found\nFragmentPath=\n") is None
    assert unit_file("docker.service", root) is None


def test_a_masked_unit_is_no_file_to_judge(tmp_path):
    """``systemctl mask`` links the unit to /dev/null: neither /dev/null nor the vendor file
    below the mask is the unit file in use."""
    assert unit_file("docker.socket", "/", "LoadState=masked\nFragmentPath=/dev/null\n") is None
    root = str(tmp_path)
    _touch(root, "/lib/systemd/system/docker.socket")
    os.makedirs(os.path.join(root, "etc", "systemd", "system"))
    os.symlink("/dev/null", os.path.join(root, "etc", "systemd", "system", "docker.socket"))
    assert unit_file("docker.socket", root) is None


def test_daemon_files_names_each_by_its_host_path(tmp_path):
    root = str(tmp_path / "host")
    _touch(root, "/lib/systemd/system/docker.service", 0o664)
    _touch(root, "/etc/default/docker", 0o600)
    files = daemon_files(
        root,
        "unix://" + str(tmp_path / "none.sock"),
        "/lib/systemd/system/docker.service",
        str(tmp_path / "no-config.toml"),
    )
    assert files["docker_service"]["path"] == "/lib/systemd/system/docker.service"
    assert (files["docker_service"]["exists"], files["docker_service"]["mode"]) == (True, "0664")
    assert (files["default_docker"]["exists"], files["default_docker"]["mode"]) == (True, "0600")
    assert files["docker_socket_unit"] == dict(files["docker_socket_unit"], path=None, exists=False)
    assert files["sysconfig_docker"]["exists"] is False
    assert files["docker_sock"]["path"] == str(tmp_path / "none.sock")
    assert files["docker_sock"]["exists"] is False
    assert files["containerd_sock"]["path"] == DEFAULT_CONTAINERD_SOCKET
