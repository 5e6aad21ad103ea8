import os

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils._containerd import (
    config_of_command_line,
    containerd_store,
    running_containerd_configs,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import is_within

# What dockerd 26.1 writes for the containerd it runs itself (recorded on Debian trixie).
MANAGED_TOML = """disabled_plugins = ["io.containerd.grpc.v1.cri"]
imports = []
oom_score = 0
plugin_dir = ""
required_plugins = []
root = "%s"
state = "/var/run/docker/containerd/daemon"
temp = ""
version = 2

[cgroup]
  path = ""
"""


def fake_proc(tmp_path, command_lines):
    proc = tmp_path / "proc"
    for pid, argv in enumerate(command_lines, start=100):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (proc / "self").mkdir(parents=True, exist_ok=True)
    return str(proc)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["containerd", "--config", "/var/run/docker/containerd/containerd.toml"], None),
        (["/usr/bin/containerd"], None),
        (["containerd", "-c", "/etc/c.toml"], "/etc/c.toml"),
        (["containerd", "--config=/etc/c.toml", "--log-level", "info"], "/etc/c.toml"),
    ],
)
def test_the_config_of_a_containerd_command_line(argv, expected):
    if expected is None and "--config" in argv:
        expected = argv[argv.index("--config") + 1]
    assert config_of_command_line(argv) == expected


def test_running_containerd_processes_are_found_by_their_program_name(tmp_path):
    proc = fake_proc(
        tmp_path,
        [
            ["/usr/sbin/dockerd", "-p", "/var/run/docker.pid"],
            ["containerd", "--config", "/var/run/docker/containerd/containerd.toml"],
            ["/usr/bin/containerd"],
            ["containerd-shim-runc-v2", "-namespace", "moby"],
        ],
    )
    assert sorted(running_containerd_configs(proc)) == [
        "/etc/containerd/config.toml",
        "/var/run/docker/containerd/containerd.toml",
    ]


def test_dockerds_own_containerd_keeps_its_store_under_the_data_root(tmp_path):
    managed = tmp_path / "containerd.toml"
    managed.write_text(MANAGED_TOML % "/srv/docker/containerd/daemon")
    proc = fake_proc(tmp_path, [["containerd", "--config", str(managed)]])
    store = containerd_store(
        "/srv/docker", proc_root=proc, managed_config=str(managed), system_socket="/nonexistent"
    )
    assert store.kind == "managed"
    assert store.root == "/srv/docker/containerd/daemon"
    assert is_within(store.root, "/srv/docker")
    assert str(managed) in store.evidence


def test_the_hosts_containerd_keeps_its_store_where_its_configuration_says(tmp_path):
    system = tmp_path / "config.toml"
    system.write_text('version = 2\nroot = "/data/containerd"\n[plugins]\n  root = "/x"\n')
    socket = tmp_path / "containerd.sock"
    socket.write_text("")
    proc = fake_proc(tmp_path, [["/usr/bin/containerd"]])
    store = containerd_store(
        "/var/lib/docker",
        proc_root=proc,
        managed_config=str(tmp_path / "absent.toml"),
        system_config=str(system),
        system_socket=str(socket),
    )
    assert store == (
        "/data/containerd",
        "system",
        "the host's containerd, root /data/containerd (set in %s)" % system,
    )
    assert not is_within(store.root, "/var/lib/docker")


def test_without_configuration_the_hosts_containerd_uses_var_lib_containerd(tmp_path):
    store = containerd_store(
        str(tmp_path / "docker"),
        proc_root=fake_proc(tmp_path, []),
        managed_config=str(tmp_path / "absent.toml"),
        system_config=str(tmp_path / "absent-config.toml"),
        system_socket=str(tmp_path / "absent.sock"),
    )
    assert store.root == "/var/lib/containerd" and store.kind == "system"


def test_a_stopped_engine_with_its_own_store_and_no_host_containerd_is_managed(tmp_path):
    data_root = tmp_path / "docker"
    os.makedirs(str(data_root / "containerd" / "daemon" / "io.containerd.metadata.v1.bolt"))
    arguments = dict(
        proc_root=fake_proc(tmp_path, []),
        managed_config=str(tmp_path / "absent.toml"),
        system_config=str(tmp_path / "absent-config.toml"),
    )
    store = containerd_store(str(data_root), system_socket=str(tmp_path / "none.sock"), **arguments)
    assert store.kind == "managed"
    assert store.root == str(data_root / "containerd" / "daemon")

    # With a host containerd answering, the engine may well have used it: not assumed managed.
    socket = tmp_path / "containerd.sock"
    socket.write_text("")
    store = containerd_store(str(data_root), system_socket=str(socket), **arguments)
    assert store.kind == "system"


@pytest.mark.parametrize(
    "path, directory, inside",
    [
        ("/var/lib/docker/containerd/daemon", "/var/lib/docker", True),
        ("/var/lib/docker", "/var/lib/docker/", True),
        ("/var/lib/docker2/containerd", "/var/lib/docker", False),
        ("/var/lib/containerd", "/var/lib/docker", False),
    ],
)
def test_is_within_compares_whole_path_components(path, directory, inside):
    assert is_within(path, directory) is inside
