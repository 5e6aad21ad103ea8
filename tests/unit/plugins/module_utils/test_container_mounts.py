"""Which bind mounts of a container expose the host (CIS 5.6, 5.20, 5.32)."""

from __future__ import annotations

from ansible_collections.dockerhost.storage.plugins.module_utils._container_mounts import (
    host_mount_findings,
)


def _bind(source, destination, rw=True, propagation="rprivate", kind="bind"):
    return {
        "Type": kind,
        "Source": source,
        "Destination": destination,
        "Mode": "",
        "RW": rw,
        "Propagation": propagation,
    }


def checks(mounts, sockets=()):
    return [(f["check"], f["source"]) for f in host_mount_findings("web", mounts, sockets)]


def test_a_sensitive_directory_itself_is_found_not_a_file_below_it():
    assert checks(
        [
            _bind("/etc", "/host/etc", rw=False),
            _bind("/etc/localtime", "/etc/localtime", rw=False),
            _bind("/usr/", "/host/usr"),
            _bind("/", "/host"),
            _bind("/srv/app", "/app"),
        ]
    ) == [
        ("sensitive_host_mount", "/etc"),
        ("sensitive_host_mount", "/usr"),
        (
            "sensitive_host_mount",
            "/",
        ),
    ]


def test_the_engine_socket_is_found_by_name_and_by_its_real_path():
    assert checks(
        [
            _bind("/var/run/docker.sock", "/var/run/docker.sock"),
            _bind("/run/containerd/containerd.sock", "/run/containerd.sock"),
            _bind("/srv/engine/api.sock", "/api.sock"),
            _bind("/srv/other.sock", "/other.sock"),
        ],
        sockets=("/srv/engine/api.sock",),
    ) == [
        ("socket_mounted", "/var/run/docker.sock"),
        ("socket_mounted", "/run/containerd/containerd.sock"),
        ("socket_mounted", "/srv/engine/api.sock"),
    ]


def test_shared_propagation_is_found_and_a_volume_is_not_a_host_mount():
    assert checks(
        [
            _bind("/srv/a", "/a", propagation="shared"),
            _bind("/srv/b", "/b", propagation="rshared"),
            _bind("/srv/c", "/c", propagation="rslave"),
            _bind("/var/lib/docker/volumes/v/_data", "/v", propagation="", kind="volume"),
            _bind("/etc", "/e", kind="volume"),
        ]
    ) == [("shared_mount_propagation", "/srv/a"), ("shared_mount_propagation", "/srv/b")]
