"""Which objects each step of reclaim offers, on an inventory in the Engine API's shape and a
layer store laid out in a temporary directory."""

from __future__ import annotations

import os

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import parse_mountinfo
from ansible_collections.dockerhost.storage.plugins.module_utils._reclaim_inventory import (
    Candidates,
    StoreLayout,
    is_anonymous,
    log_path,
    mounted_layers,
    parse_engine_time,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._reclaim_policy import read_policy

NOW = 1_800_000_000.0
DAY = 86400


def _layer(root, layer_id, files=0, short=None):
    home = os.path.join(root, "overlay2")
    os.makedirs(os.path.join(home, layer_id, "diff"))
    for index in range(files):
        open(os.path.join(home, layer_id, "diff", str(index)), "w").close()
    short = short or layer_id[:26].upper()
    with open(os.path.join(home, layer_id, "link"), "w") as handle:
        handle.write(short)
    os.makedirs(os.path.join(home, "l"), exist_ok=True)
    os.symlink("../%s/diff" % layer_id, os.path.join(home, "l", short))
    return os.path.join(home, layer_id, "diff")


def _time(seconds_ago):
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S.5Z", time.gmtime(NOW - seconds_ago))


def _image(image_id, diffs, tags=(), age=10 * DAY, parent="", labels=None):
    return {
        "Id": "sha256:" + image_id,
        "RepoTags": list(tags),
        "Created": _time(age),
        "Parent": parent,
        "Config": {"Labels": labels},
        "GraphDriver": {"Name": "overlay2", "Data": {
            "UpperDir": diffs[0], "LowerDir": ":".join(diffs[1:]) or None}},
    }  # fmt: skip


def _container(container_id, image_id, status, age=10 * DAY, upper=None, labels=None):
    data = {"UpperDir": upper} if upper else None
    return {
        "Id": container_id,
        "Name": "/" + container_id[:6],
        "Image": "sha256:" + image_id,
        "Created": _time(age + 60),
        "State": {"Status": status, "FinishedAt": _time(age) if status == "exited" else
                  "0001-01-01T00:00:00Z"},
        "Config": {"Labels": labels},
        "GraphDriver": {"Name": "overlay2", "Data": data},
        "HostConfig": {"LogConfig": {"Type": "json-file"}},
        "Mounts": [],
    }  # fmt: skip


def _policy(**more):
    params = {
        "dangling_images_older_than": "1h",
        "stopped_containers_older_than": "1d",
        "unused_images_older_than": "1d",
        "orphaned_layers_older_than": "0s",
    }
    params.update(more)
    return read_policy(params)


@pytest.fixture
def store(tmp_path):
    root = str(tmp_path / "docker")
    base, shared, top = ("a" * 64, "b" * 64, "c" * 64)
    diffs = {name: _layer(root, name, files=n) for name, n in ((base, 3), (shared, 5), (top, 7))}
    inventory = {
        "images": [
            _image("1" * 64, [diffs[shared], diffs[base]], tags=["used:1"]),
            _image("2" * 64, [diffs[top], diffs[base]], tags=["unused:1"]),
            _image("3" * 64, [diffs[shared]], tags=["kept:1"], labels={"keep": ""}),
        ],
        "containers": [
            _container("d" * 64, "1" * 64, "running"),
            _container("e" * 64, "1" * 64, "exited", age=2 * DAY),
            _container("f" * 64, "2" * 64, "exited", age=3600),
        ],
        "build_cache": [],
        "volumes": [],
        "store_root": root,
    }
    return root, inventory


def _ids(candidates):
    return [candidate["id"] for candidate in candidates]


def test_only_containers_stopped_long_enough_are_offered_oldest_first(store):
    root, inventory = store
    offer = Candidates(inventory, _policy(), NOW, StoreLayout(root))
    assert _ids(offer("stopped_containers", [])) == ["e" * 64]
    offer = Candidates(
        inventory, _policy(stopped_containers_older_than="0s"), NOW, StoreLayout(root)
    )
    assert _ids(offer("stopped_containers", [])) == ["e" * 64, "f" * 64]


def test_an_image_any_container_uses_is_never_offered(store):
    root, inventory = store
    offer = Candidates(inventory, _policy(keep_label="keep"), NOW, StoreLayout(root))
    # unused:1 is used by the stopped container f (kept: too young); kept:1 carries the label
    assert _ids(offer("unused_images", [])) == []
    chosen = [{"kind": "container", "id": "f" * 64}]
    assert _ids(offer("unused_images", chosen)) == ["sha256:" + "2" * 64]


def test_an_image_frees_only_the_layers_no_other_image_holds(store):
    root, inventory = store
    offer = Candidates(inventory, _policy(keep_label="keep"), NOW, StoreLayout(root))
    chosen = [{"kind": "container", "id": "f" * 64}]
    (candidate,) = offer("unused_images", chosen)
    # its own top layer: the directory, diff, link, 7 files and the l/ link; base is shared
    assert candidate["inodes"] == 3 + 7 + 1
    assert candidate["filesystem"] == "data_root" and candidate["bytes"] > 0


def test_dangling_and_parent_images_are_told_apart(store):
    root, inventory = store
    diff = _layer(root, "9" * 64, files=2)
    inventory["images"].append(_image("4" * 64, [diff], tags=["<none>:<none>"]))
    inventory["images"].append(_image("5" * 64, [diff], parent="sha256:" + "4" * 64))
    offer = Candidates(inventory, _policy(), NOW, StoreLayout(root))
    # 4 is the parent of 5: only 5 (dangling, no children) is offered
    assert _ids(offer("dangling_images", [])) == ["sha256:" + "5" * 64]


def test_orphans_are_proven_against_the_engine_mounts_and_build_cache(store):
    root, inventory = store
    orphan, mounted, snapshot = "0" * 64, "7" * 64, "jycgamsuf8wi5ol8sbir8739r"
    for layer in (orphan, mounted, snapshot):
        _layer(root, layer, files=1)
    home = os.path.join(root, "overlay2")
    line = (
        "900 30 0:99 / /merged rw - overlay overlay rw,lowerdir=l/%s,upperdir=%s/%s/diff,"
        "workdir=%s/%s/work\n" % ("A" * 26, home, mounted, home, mounted)
    )
    offer = Candidates(inventory, _policy(), NOW, StoreLayout(root), parse_mountinfo(line))
    assert offer.orphaned_layers() == [orphan]
    assert offer.in_use(mounted) == "an overlay mount uses it"
    assert offer.in_use("a" * 64) == "an image or container of the engine names it"
    (candidate,) = offer("orphaned_layers", [])
    assert candidate["id"] == orphan and candidate["inodes"] == 3 + 1 + 1


def test_mounted_layers_resolve_short_links(store):
    root, _inventory = store
    layout = StoreLayout(root)
    line = "900 30 0:99 / /m rw - overlay overlay rw,lowerdir=l/%s:l/%s\n" % (
        ("a" * 64)[:26].upper(), ("b" * 64)[:26].upper())  # fmt: skip
    assert mounted_layers(parse_mountinfo(line), layout) == {"a" * 64, "b" * 64}


def test_named_volumes_are_never_anonymous():
    assert is_anonymous({"Name": "f" * 64, "Labels": None})
    assert is_anonymous({"Name": "x", "Labels": {"com.docker.volume.anonymous": ""}})
    assert not is_anonymous({"Name": "data", "Labels": None})
    assert not is_anonymous({"Name": "f" * 64, "Labels": {"com.docker.compose.project": "p"}})


def test_a_log_outside_the_containers_directory_is_not_reclaims_to_truncate():
    container = {"Id": "d" * 64, "LogPath": "/etc/passwd"}
    assert log_path(container, "/var/lib/docker") is None
    container["LogPath"] = "/var/lib/docker/containers/%s/%s-json.log" % ("d" * 64, "d" * 64)
    assert log_path(container, "/var/lib/docker") == container["LogPath"]
    assert log_path({"Id": "../x", "LogPath": "/x"}, "/var/lib/docker") is None


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("2026-12-02T19:42:50.718596164Z", 1796240570.718596164),
        ("0001-01-01T00:00:00Z", None),
        (1796240527, 1796240527.0),
        ("garbage", None),
    ],
)
def test_engine_times(value, seconds):
    assert parse_engine_time(value) == (pytest.approx(seconds) if seconds else None)


def test_times_with_an_offset_are_the_same_moment():
    utc = parse_engine_time("2026-12-02T17:00:00Z")
    assert parse_engine_time("2026-12-02T12:00:00-05:00") == utc
    assert parse_engine_time("2026-12-02T18:30:00+0130") == utc


def test_on_the_containerd_store_objects_free_space_on_containerds_filesystem(store):
    """Without a layer store (containerd image store) nothing is measured in advance, and the
    objects count on the filesystem the caller says holds containerd's snapshots: the
    data-root's when containerd's root is on it."""
    _root, inventory = store
    policy = _policy(stopped_containers_older_than="0s")
    offer = Candidates(inventory, policy, NOW, None, image_filesystem="data_root")
    (old, young) = offer("stopped_containers", [])
    assert old["filesystem"] == "data_root" and old["inodes"] is None
    offer = Candidates(inventory, policy, NOW, None, image_filesystem="containerd_root")
    assert {c["filesystem"] for c in offer("stopped_containers", [])} == {"containerd_root"}


def test_logs_skip_compressed_rotations_and_files_rotated_away(tmp_path):
    from ansible_collections.dockerhost.storage.plugins.module_utils._reclaim_inventory import (
        log_files,
    )

    log = tmp_path / ("d" * 64 + "-json.log")
    log.write_text("x" * 100)
    (tmp_path / (log.name + ".1")).write_text("y" * 50)
    (tmp_path / (log.name + ".2.gz")).write_bytes(b"\x1f\x8b")
    (tmp_path / (log.name + ".3")).symlink_to("/etc/passwd")
    assert [os.path.basename(path) for path, _info in log_files(str(log))] == [
        log.name,
        log.name + ".1",
    ]
