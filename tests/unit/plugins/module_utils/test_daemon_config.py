import json
import os

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils._daemon_config import (
    DaemonConfigError,
    changed_storage_keys,
    check_data_root,
    check_key_types,
    check_storage_driver,
    check_storage_opts,
    merge_storage_keys,
    needs_store_pin,
    render_daemon_json,
    store_pin,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._daemon_json import (
    DaemonJsonError,
    mode_problems,
    parse_daemon_json_strict,
    read_daemon_json_for_update,
    write_daemon_json_atomically,
)

UNRELATED = (
    '{"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"},\n'
    ' "registry-mirrors": ["https://mirror.example"],\n'
    ' "default-runtime": "nvidia",\n'
    ' "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}},\n'
    ' "features": {"buildkit": true, "cdi": {"enabled": true}}}'
)


def nothing(**keys):
    wanted = {
        "storage-driver": None,
        "storage-opts": None,
        "data-root": None,
        "containerd-snapshotter": None,
    }
    wanted.update(keys)
    return wanted


def test_merge_keeps_every_other_key_and_order_and_appends_new_keys():
    config = json.loads(UNRELATED)
    new, changed = merge_storage_keys(
        config,
        nothing(**{"storage-driver": "overlay2", "data-root": "/srv/docker"}),
    )
    assert list(new) == list(config) + ["storage-driver", "data-root"]
    for key in config:
        assert new[key] == config[key]
    assert changed == ["storage-driver", "data-root"]
    assert "storage-driver" not in config  # the input is not modified


def test_existing_key_keeps_its_position():
    config = {"storage-driver": "vfs", "debug": True}
    new, changed = merge_storage_keys(config, nothing(**{"storage-driver": "overlay2"}))
    assert list(new.items()) == [("storage-driver", "overlay2"), ("debug", True)]
    assert changed == ["storage-driver"]


def test_snapshotter_is_merged_into_features_not_replacing_it():
    config = json.loads(UNRELATED)
    new, changed = merge_storage_keys(config, nothing(**{"containerd-snapshotter": False}))
    assert new["features"] == {
        "buildkit": True,
        "cdi": {"enabled": True},
        "containerd-snapshotter": False,
    }
    assert changed == ["features.containerd-snapshotter"]


def test_removing_the_snapshotter_keeps_other_features_and_drops_an_empty_object():
    config = {"features": {"buildkit": True, "containerd-snapshotter": True}, "debug": True}
    new, changed = merge_storage_keys(config, nothing(), remove=["containerd-snapshotter"])
    assert new == {"features": {"buildkit": True}, "debug": True}
    assert changed == ["features.containerd-snapshotter"]
    alone = {"features": {"containerd-snapshotter": True}}
    assert merge_storage_keys(alone, nothing(), remove=["containerd-snapshotter"])[0] == {}


def test_same_values_change_nothing():
    config = {"storage-driver": "overlay2", "storage-opts": ["overlay2.size=1G"]}
    new, changed = merge_storage_keys(
        config, nothing(**{"storage-driver": "overlay2", "storage-opts": ["overlay2.size=1G"]})
    )
    assert (new, changed) == (config, [])


def test_empty_storage_opts_and_remove_delete_keys():
    config = {"storage-opts": ["dm.basesize=10G"], "data-root": "/srv/docker", "debug": False}
    new, changed = merge_storage_keys(config, nothing(**{"storage-opts": []}), remove=["data-root"])
    assert new == {"debug": False}
    assert changed == ["storage-opts", "data-root"]
    # Removing a key that is not there changes nothing.
    assert merge_storage_keys({}, nothing(), remove=["storage-driver"]) == ({}, [])


def test_changed_keys_compare_values_not_history():
    before = {"storage-driver": "overlay2", "features": {"buildkit": True}}
    after = {"storage-driver": "overlay2", "data-root": "/srv/docker"}
    assert changed_storage_keys(before, after) == ["data-root"]
    after["features"] = {"containerd-snapshotter": False}
    assert changed_storage_keys(before, after) == ["data-root", "features.containerd-snapshotter"]


def test_set_and_remove_the_same_key_is_refused():
    with pytest.raises(DaemonConfigError, match="storage-driver is both set and listed in remove"):
        merge_storage_keys({}, nothing(**{"storage-driver": "vfs"}), remove=["storage-driver"])


def test_features_that_is_not_an_object_is_refused():
    with pytest.raises(DaemonConfigError, match="features in daemon.json is true, not an object"):
        merge_storage_keys({"features": True}, nothing(**{"containerd-snapshotter": True}))


def test_render_is_indented_with_trailing_newline_and_keeps_unicode():
    text = render_daemon_json({"labels": ["site=Zürich"], "storage-driver": "overlay2"})
    assert text == '{\n  "labels": [\n    "site=Zürich"\n  ],\n  "storage-driver": "overlay2"\n}\n'


@pytest.mark.parametrize(
    "config, message",
    [
        (
            {"storage-driver": ["overlay2"]},
            'key storage-driver must be a string, found \\["overlay2"\\]',
        ),
        ({"storage-opts": "overlay2.size=1G"}, "key storage-opts must be an array of strings"),
        ({"storage-opts": [1]}, "every item of storage-opts must be a string"),
        ({"features": {"containerd-snapshotter": "yes"}}, 'must be true or false, found "yes"'),
    ],
)
def test_wrong_types_in_the_file_are_named(config, message):
    with pytest.raises(DaemonConfigError, match="/etc/docker/daemon.json: .*" + message):
        check_key_types(config, "/etc/docker/daemon.json")


# Engine versions the rules differ between.
E20, E23, E24, E25, E29 = (20, 10, 24), (23, 0, 0), (24, 0, 0), (25, 0, 0), (29, 0, 0)
XFS_PQUOTA = {"backing_fs": "xfs", "project_quota": True, "mount_point": "/srv"}
EXT4 = {"backing_fs": "ext4", "project_quota": False, "mount_point": "/", "super_options": "rw"}


@pytest.mark.parametrize(
    "opts, driver, engine, backing",
    [
        (["overlay2.size=20G"], "overlay2", E20, XFS_PQUOTA),
        (["Overlay2.Size=512M"], "overlay2", E29, XFS_PQUOTA),
        (["overlay2.size=20G"], "overlay2", E20, None),
        (["dm.basesize=20G", "dm.fs=xfs"], "devicemapper", E24, None),
        (["btrfs.min_space=10G"], "btrfs", E29, None),
        (["zfs.fsname=tank/docker"], "zfs", E29, None),
        (["size=10G"], "vfs", E29, XFS_PQUOTA),
        (["overlay2.size=10G"], "overlayfs", E29, XFS_PQUOTA),
    ],
)
def test_accepted_options(opts, driver, engine, backing):
    check_storage_opts(opts, driver, engine, backing)


@pytest.mark.parametrize(
    "opts, driver, engine, backing, message",
    [
        (
            ["dm.basesize=20G"],
            "overlay2",
            E20,
            EXT4,
            "storage-opts: dm.basesize is not an option of the overlay2 driver \\(it belongs to "
            "devicemapper\\).*overlay2 accepts only overlay2.size, and only on xfs",
        ),
        (
            ["overlay2.size=20G"],
            "overlay2",
            E20,
            EXT4,
            "overlay2.size needs the data-root on xfs mounted with pquota .* / is ext4",
        ),
        (
            ["overlay2.size=20G"],
            "overlay2",
            E20,
            {"backing_fs": "xfs", "project_quota": False, "mount_point": "/srv"},
            "overlay2.size needs .* /srv is xfs",
        ),
        (["size=1G"], "vfs", E20, EXT4, "size needs the data-root on xfs mounted with pquota"),
        (["vfs.size=1G"], "vfs", E20, EXT4, "vfs.size is not an option of the vfs driver"),
        (["overlay2.size=lots"], "overlay2", E20, XFS_PQUOTA, "overlay2.size=lots is not a size"),
        (["overlay2.size"], "overlay2", E20, XFS_PQUOTA, "not of the form key=value"),
        (
            ["overlay2.override_kernel_check=true"],
            "overlay2",
            E24,
            None,
            "overlay2.override_kernel_check was removed in Docker Engine 24.0",
        ),
        (["overlay2.size=1G"], "btrfs", E29, None, "not an option of the btrfs driver"),
        (["btrfs.min_space=1G"], "zfs", E29, None, "zfs accepts only zfs.fsname"),
        (["dm.basesize=1G"], "vfs", E29, None, "vfs accepts only size"),
        (["fuse.x=1"], "fuse-overlayfs", E29, None, "fuse-overlayfs accepts no options"),
        (["zfs.fsname="], "zfs", E29, None, "zfs.fsname needs a dataset name"),
    ],
)
def test_refused_options_name_key_and_reason(opts, driver, engine, backing, message):
    with pytest.raises(DaemonConfigError, match=message):
        check_storage_opts(opts, driver, engine, backing)


def test_override_kernel_check_is_only_warned_about_before_24():
    warnings = check_storage_opts(["overlay2.override_kernel_check=1"], "overlay2", E23)
    assert warnings == [
        "storage-opts: overlay2.override_kernel_check has no effect and Docker Engine 24.0 and "
        "later refuse to start with it; remove the option"
    ]


def test_size_without_filesystem_evidence_warns():
    warnings = check_storage_opts(["overlay2.size=1G"], "overlay2", E29, None)
    assert "not checked because support_check is false" in warnings[0]


@pytest.mark.parametrize(
    "driver, engine, message",
    [
        ("overlay3", E29, "'overlay3' is not a storage driver; known drivers are overlay2, aufs"),
        (
            "devicemapper",
            E25,
            "devicemapper was removed in Docker Engine 25.0 and this engine is 25.0",
        ),
        ("aufs", E24, "aufs was removed in Docker Engine 24.0"),
        ("overlayfs", E29, "overlayfs is a containerd snapshotter"),
    ],
)
def test_refused_drivers(driver, engine, message):
    with pytest.raises(DaemonConfigError, match="storage-driver: " + message):
        check_storage_driver(driver, engine)


def test_known_drivers_pass():
    check_storage_driver("devicemapper", E24)
    check_storage_driver("overlay2", E29)
    check_storage_driver("overlayfs", E29, containerd_snapshotter=True)


@pytest.mark.parametrize(
    "data_root, message",
    [
        ("srv/docker", "is not an absolute path"),
        ("/", "cannot be the data-root"),
        ("/proc/docker", "under /proc, which is a kernel pseudo-filesystem"),
        ("/sys", "under /sys"),
        ("/dev/shm/docker", "under /dev"),
        ("/run/docker", "under /run, which is a tmpfs that is lost at reboot"),
    ],
)
def test_refused_data_roots(data_root, message):
    with pytest.raises(DaemonConfigError, match="data-root: .*" + message):
        check_data_root(data_root)


def test_data_root_is_normalised_and_may_not_exist_yet(tmp_path):
    assert check_data_root(str(tmp_path) + "//new/./docker/") == str(tmp_path / "new" / "docker")
    assert check_data_root("/runner/docker") == "/runner/docker"


def test_data_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "docker").write_text("")
    with pytest.raises(
        DaemonConfigError, match="data-root: .*/docker exists and is not a directory"
    ):
        check_data_root(str(tmp_path / "docker"))


def test_data_root_through_a_symlink_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(str(tmp_path / "real"), str(tmp_path / "link"))
    with pytest.raises(DaemonConfigError, match="through the symbolic link .*/link -> .*/real"):
        check_data_root(str(tmp_path / "link" / "docker"))


@pytest.mark.parametrize(
    "engine, old, new, config, given, expected",
    [
        (E29, "/var/lib/docker", "/srv/docker", {}, False, True),
        (E29, "/var/lib/docker", "/var/lib/docker/", {}, False, False),
        (E25, "/var/lib/docker", "/srv/docker", {}, False, False),
        (E29, "/var/lib/docker", "/srv/docker", {"storage-driver": "overlay2"}, False, False),
        (
            E29,
            "/var/lib/docker",
            "/srv/docker",
            {"features": {"containerd-snapshotter": False}},
            False,
            False,
        ),
        (E29, "/var/lib/docker", "/srv/docker", {}, True, False),
    ],
)
def test_store_pin_needed(engine, old, new, config, given, expected):
    assert needs_store_pin(engine, old, new, config, given) is expected


def test_store_pin_keeps_the_store_in_use():
    assert store_pin("overlay2", False, "vfs")[:2] == ("storage-driver", "overlay2")
    assert store_pin("overlayfs", True, "overlay2")[:2] == ("containerd-snapshotter", True)
    assert store_pin(None, False, "overlay2")[:2] == ("storage-driver", "overlay2")
    assert store_pin(None, False, None) is None


@pytest.mark.parametrize(
    "raw, message",
    [
        (b'\xef\xbb\xbf{"debug": true}', "starts with a UTF-8 byte-order mark"),
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b'{"debug": true', "is not valid JSON at line 1 column 15"),
        (b'["overlay2"]', "must hold a JSON object .*found a JSON array"),
        (b'"overlay2"', "found a JSON string"),
        (
            b'{"storage-driver": "vfs", "storage-driver": "overlay2"}',
            "gives the key 'storage-driver' more than once",
        ),
        (
            b'{"log-opts": {"max-size": "1m", "max-size": "2m"}}',
            "gives the key 'max-size' more than once",
        ),
        (b'{"labels": ["\xff"]}', "is not UTF-8 text"),
    ],
)
def test_strict_parsing_refuses_doubtful_files(raw, message):
    with pytest.raises(DaemonJsonError, match="^/etc/docker/daemon.json .*" + message):
        parse_daemon_json_strict(raw, "/etc/docker/daemon.json")


def test_strict_parsing_keeps_order():
    assert list(parse_daemon_json_strict(b'{"b": 1, "a": 2, "c": 3}')) == ["b", "a", "c"]


def test_read_for_update(tmp_path):
    path = tmp_path / "daemon.json"
    assert read_daemon_json_for_update(str(path)) == (None, {})
    path.write_bytes(b'{"debug": true}')
    assert read_daemon_json_for_update(str(path)) == (b'{"debug": true}', {"debug": True})
    with pytest.raises(DaemonJsonError, match="is a directory, not a file"):
        read_daemon_json_for_update(str(tmp_path))


def test_atomic_write_keeps_mode_and_creates_new_files_0644(tmp_path):
    existing = tmp_path / "daemon.json"
    existing.write_text("{}")
    os.chmod(str(existing), 0o600)
    write_daemon_json_atomically(str(existing), '{"debug": true}\n')
    assert existing.read_text() == '{"debug": true}\n'
    assert os.stat(str(existing)).st_mode & 0o7777 == 0o600
    new = tmp_path / "new.json"
    write_daemon_json_atomically(str(new), "{}\n")
    assert os.stat(str(new)).st_mode & 0o7777 == 0o644
    assert sorted(os.listdir(str(tmp_path))) == ["daemon.json", "new.json"]


def test_loose_mode_is_reported(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text("{}")
    os.chmod(str(path), 0o666)
    problems = mode_problems(str(path))
    assert any("mode 0666, looser than 0644 (CIS Docker Benchmark 3.18)" in p for p in problems)


def test_unreadable_path_is_named(tmp_path):
    # Even root cannot open a file below a regular file.
    (tmp_path / "etc").write_text("")
    path = str(tmp_path / "etc" / "daemon.json")
    with pytest.raises(DaemonJsonError, match="^cannot read .*/etc/daemon.json: Not a directory"):
        read_daemon_json_for_update(path)


@pytest.mark.parametrize(
    "option, driver, note, accepts",
    [
        ("dm.=1", "devicemapper", "", "dm.* options"),
        ("size=1G", "devicemapper", "", "dm.* options"),
        ("overlay2.size=1G", "vfs", " (it belongs to overlay2)", "only size"),
        ("size=1G", "overlay", "", "no options"),
        (
            "overlay2.foo=1",
            "overlay2",
            "",
            "only overlay2.size, and only on xfs mounted with pquota",
        ),
        ("btrfs.foo=1", "btrfs", "", "only btrfs.min_space"),
    ],
)
def test_an_unknown_storage_option_names_its_owner_and_what_the_driver_accepts(
    option, driver, note, accepts
):
    key = option.partition("=")[0]
    with pytest.raises(DaemonConfigError) as error:
        check_storage_opts([option], driver, (27, 0, 0))
    assert str(error.value) == (
        "storage-opts: %s is not an option of the %s driver%s; dockerd refuses to start with it "
        "(%s: unknown option). %s accepts %s" % (key, driver, note, driver, driver, accepts)
    )


@pytest.mark.parametrize("data_root", ["/srv/do\0cker", "relative/docker"])
def test_a_data_root_that_is_not_an_absolute_path_is_refused(data_root):
    with pytest.raises(DaemonConfigError, match="is not an absolute path"):
        check_data_root(data_root)


def test_a_data_root_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "docker"
    path.write_text("")
    with pytest.raises(DaemonConfigError) as error:
        check_data_root(str(path))
    assert str(error.value) == (
        "data-root: %s exists and is not a directory; give a directory" % path
    )
    path.unlink()
    assert check_data_root(str(path) + "/") == str(path)


def test_only_a_graphdriver_the_engine_runs_is_pinned():
    assert store_pin("overlayfs", False, "overlay2") == (
        "storage-driver",
        "overlay2",
        "overlay2 is the driver recommended for the new data-root",
    )
    assert store_pin(None, False, None) is None
