"""userns-remap as the storage sees it: the remapped root and where it comes from."""

from __future__ import annotations

import os

import pytest
from recorded_engine import recorded_answers, serve_engine

from ansible_collections.dockerhost.storage.plugins.module_utils._engine_state import (
    detect_engine,
    uses_containerd_store,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._userns_remap import (
    blocking_directory,
    remapped_ids,
    remapped_root_name,
    split_remapped_root,
    split_setting,
    store_root,
    userns_remap_fact,
)

PASSWD = "root:x:0:0::/root:/bin/bash\ndockremap:x:102:106::/nonexistent:/bin/false\napp:x:1500:1500::/:/bin/false\n"
GROUP = "root:x:0:\ndockremap:x:106:\napp:x:1500:\nshared:x:1600:\n"


def host(tmp_path, subuid, subgid):
    """A host tree with /etc/passwd, /etc/group, /etc/subuid and /etc/subgid."""
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text(PASSWD)
    (etc / "group").write_text(GROUP)
    (etc / "subuid").write_text(subuid)
    (etc / "subgid").write_text(subgid)
    return str(tmp_path)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("default", ("dockremap", "dockremap")),
        ("app", ("app", "app")),
        ("app:shared", ("app", "shared")),
        ("1500", ("1500", "1500")),
    ],
)
def test_the_setting_names_a_user_and_a_group_as_dockerd_reads_it(value, expected):
    assert split_setting(value) == expected


def test_default_maps_to_the_lowest_range_of_dockremap(tmp_path):
    # What dockerd 20.10 wrote on this machine on its first start with "default".
    root = host(tmp_path, "dockremap:100000:65536\n", "dockremap:100000:65536\n")
    assert remapped_ids("default", root) == ("dockremap", "dockremap", 100000, 100000, None)


def test_several_ranges_map_root_to_the_lowest_start_and_ids_may_name_the_user(tmp_path):
    # dockerd sorts the ranges; a subuid line may name the user by its uid.
    root = host(
        tmp_path,
        "app:300000:65536\n1500:200000:65536\nother:100000:65536\n",
        "shared:400000:65536\nshared:250000:1000\n",
    )
    assert remapped_ids("app:shared", root) == ("app", "shared", 200000, 250000, None)
    # A number names the user of that uid (and the group of that gid).
    assert remapped_ids("1500:1600", root) == ("app", "shared", 200000, 250000, None)


@pytest.mark.parametrize(
    "setting, message",
    [
        (
            "default",
            "user dockremap has no range in /etc/subuid; group dockremap has no range in "
            "/etc/subgid; the remapped root is not known until it has (dockerd adds them for "
            "dockremap on its next start)",
        ),
        (
            "app",
            "user app has no range in /etc/subuid; group app has no range in /etc/subgid; the "
            "remapped root is not known until it has: add them (usermod --add-subuids/"
            "--add-subgids)",
        ),
    ],
)
def test_without_ranges_the_remapped_root_is_unknown_and_says_why(tmp_path, setting, message):
    root = host(tmp_path, "", "")
    assert remapped_ids(setting, root)[2:] == (None, None, message)


@pytest.mark.parametrize(
    "docker_root_dir, expected",
    [
        ("/var/lib/docker/100000.100000", ("/var/lib/docker", "100000.100000")),
        ("/srv/docker/231072.231072/", ("/srv/docker", "231072.231072")),
        ("/var/lib/docker", ("/var/lib/docker", None)),
        ("/srv/100000", ("/srv/100000", None)),
    ],
)
def test_the_remapped_root_is_split_off_the_engines_root(docker_root_dir, expected):
    assert split_remapped_root(docker_root_dir) == expected


def test_a_directory_others_cannot_traverse_blocks_the_remapped_root(tmp_path):
    data_root = tmp_path / "a" / "b" / "docker"
    data_root.mkdir(parents=True)
    os.chmod(data_root, 0o710)
    os.chown(data_root, 0, 100000)

    def stat_path(path):
        # pytest's own directories above tmp_path are 0700 (they would block, as they block
        # dockerd): only the tree of the test is judged.
        return os.stat(path if path.startswith(str(tmp_path)) else "/")

    def blocking():
        return blocking_directory(str(data_root), 100000, 100000, stat_path)

    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "a", 0o755)
    # The data-root itself lets the remapped group through, as dockerd makes it.
    assert blocking() is None
    os.chmod(tmp_path / "a", 0o750)
    assert blocking() == str(tmp_path / "a")
    # Its owner may pass through u+x: a directory owned by the remapped uid does not block.
    os.chown(tmp_path / "a", 100000, 0)
    assert blocking() is None
    # A data-root that does not exist yet is made by dockerd: only what exists counts.
    later = str(data_root / "new" / "deeper")
    assert blocking_directory(later, 100000, 100000, stat_path) is None


def _api_info(remapped_root=None, userns=True):
    return {
        "version": "20.10.24",
        "version_source": "api",
        "userns_remap": userns,
        "remapped_root": remapped_root,
    }


def test_the_running_engine_decides_and_names_the_remapped_root(tmp_path):
    root = host(tmp_path, "dockremap:100000:65536\n", "dockremap:100000:65536\n")
    data_root = tmp_path / "docker"
    data_root.mkdir()
    fact = userns_remap_fact(
        _api_info("100000.100000"),
        str(data_root),
        {"userns_remap": "default"},
        [],
        "/etc/docker/daemon.json",
        root,
    )
    assert fact["enabled"] is True and fact["engine"] is True
    assert fact["setting"] == "default"
    assert fact["configured_in"] == "daemon.json /etc/docker/daemon.json"
    assert (fact["user"], fact["uid"], fact["gid"]) == ("dockremap", 100000, 100000)
    assert fact["remapped_root"] == str(data_root / "100000.100000")
    assert fact["remapped_root_source"] == "engine"
    assert store_root(str(data_root), fact) == str(data_root / "100000.100000")


def test_a_stopped_engine_reads_the_remapped_root_from_the_subordinate_ranges(tmp_path):
    root = host(tmp_path, "app:200000:65536\n", "app:300000:65536\n")
    flag = {
        "key": "userns-remap",
        "flag": "--userns-remap",
        "value": "app",
        "where": "/lib/systemd/system/docker.service:12",
    }
    fact = userns_remap_fact(
        {"version_source": "binary"},
        "/srv/docker",
        {"userns_remap": None},
        [flag],
        "/etc/docker/daemon.json",
        root,
    )
    assert fact["enabled"] is True and fact["engine"] is None
    assert fact["configured_in"] == "--userns-remap app in /lib/systemd/system/docker.service:12"
    assert fact["remapped_root"] == "/srv/docker/200000.300000"
    assert fact["remapped_root_source"] == "subuid"


def test_off_is_off_and_the_store_is_the_data_root(tmp_path):
    fact = userns_remap_fact(
        _api_info(userns=False), "/var/lib/docker", {}, [], "/etc/docker/daemon.json", "/"
    )
    assert (fact["enabled"], fact["engine"], fact["setting"], fact["remapped_root"]) == (
        False,
        False,
        None,
        None,
    )
    assert store_root("/var/lib/docker", fact) == "/var/lib/docker"


@pytest.mark.parametrize(
    "release, data_root, store, containerd_store",
    [
        ("20.10-userns", "/var/lib/docker", "100000.100000", False),
        # dockerd 28.5 starts with userns-remap and the containerd image store together.
        ("28.5-userns-containerd", "/var/lib/docker", "100000.100000", True),
        ("29.0", "/var/lib/docker", None, True),
    ],
)
def test_recorded_engines_name_the_data_root_and_the_remapped_root(
    tmp_path, release, data_root, store, containerd_store
):
    answers = recorded_answers(release)
    with serve_engine(os.path.join(str(tmp_path), "engine.sock"), answers) as docker_host:
        info, _version, _client = detect_engine(docker_host)
    assert info["data_root"] == data_root
    assert info["remapped_root"] == store
    assert info["userns_remap"] is (store is not None)
    assert uses_containerd_store(info) is containerd_store
    assert remapped_root_name(info, {}) == store


def test_without_an_engine_daemon_json_names_the_remapped_root(tmp_path):
    root = host(tmp_path, "dockremap:100000:65536\n", "dockremap:165536:65536\n")
    info = {"version_source": "none", "remapped_root": None}
    assert remapped_root_name(info, {"userns_remap": "default"}, root) == "100000.165536"
    assert remapped_root_name(info, {"userns_remap": None}, root) is None
    assert remapped_root_name(info, {"userns_remap": "default"}, host(tmp_path, "", "")) is None
