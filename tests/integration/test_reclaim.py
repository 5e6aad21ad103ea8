"""reclaim on a real dockerd whose data-root is alone on a small ext4 with few inodes, filled
to 97% of them by images of small files, stopped containers, dangling images, BuildKit cache
and an orphaned layer directory (harness.crowded_store)."""

from __future__ import annotations

import os
import time

import pytest
from ansible_module import run_module
from harness import crowded_store
from harness.commands import run

pytestmark = pytest.mark.integration

STEPS_AT_ONCE = {
    "dangling_images_older_than": "0s",
    "stopped_containers_older_than": "0s",
    "unused_images_older_than": "0s",
    "orphaned_layers_older_than": "0s",
}


@pytest.fixture
def crowded(crowded_dockerd):
    return crowded_dockerd


def _args(daemon, **more):
    args = {"docker_host": "unix://" + daemon.socket, "target_free_bytes_percent": 0}
    args.update(STEPS_AT_ONCE)
    args.update(more)
    return args


def _objects(result):
    return [(o["kind"], o["id"]) for step in result["steps"] for o in step["removed"]]


def _df_inodes(path):
    out = run(["df", "--output=itotal,iavail", path]).stdout.split("\n")[1].split()
    return int(out[0]), int(out[1])


def _ids(daemon, what):
    if what == "containers":
        return {c["Id"] for c in daemon.api("GET", "/containers/json?all=1")}
    if what == "images":
        return {i["Id"] for i in daemon.api("GET", "/images/json?all=1")}
    return {v["Name"] for v in daemon.api("GET", "/volumes")["Volumes"] or []}


def test_reclaim_reaches_twenty_percent_free_inodes_removing_nothing_in_use(crowded, tmp_path):
    daemon, fs, made = crowded
    total, free = _df_inodes(fs.mount_point)
    assert free * 100 / total <= 3.5, "the fill did not reach 97% of the inodes"
    _audit_says_what_reclaim_would_free(daemon, tmp_path)

    plan = run_module("reclaim", _args(daemon, target_free_inodes_percent=20), check=True)
    assert not plan.get("failed"), plan.get("msg")
    assert plan["reached"] and plan["changed"]
    assert _df_inodes(fs.mount_point) == (total, free), "check mode changed the filesystem"
    planned = _objects(plan)

    result = run_module("reclaim", _args(daemon, target_free_inodes_percent=20))
    assert not result.get("failed"), result.get("msg")
    assert result["reached"] and result["changed"]
    # Check mode's list is what the real run removed, object for object and in order.
    assert _objects(result) == planned

    # df -i agrees with the figures reported, and the target holds.
    after_total, after_free = _df_inodes(fs.mount_point)
    reported = result["after"]["data_root"]
    assert (reported["inodes_total"], reported["inodes_free"]) == (after_total, after_free)
    assert after_free * 100 / after_total >= 20
    assert result["freed"]["data_root"]["inodes"] == after_free - free
    freed_by_steps = sum(step["freed"]["data_root"]["inodes"] for step in result["steps"])
    assert freed_by_steps == after_free - free

    # Nothing in use and nothing kept by the policy went.
    containers, images = _ids(daemon, "containers"), _ids(daemon, "images")
    assert made["keep"]["running"] in containers
    assert made["keep"]["kept_container"] in containers
    assert made["keep"]["image"] in images and made["keep"]["kept_image"] in images
    assert "data" in _ids(daemon, "volumes")
    running = daemon.api("GET", "/containers/%s/json" % made["keep"]["running"])
    assert running["State"]["Running"]
    # It stopped as soon as the target held: not everything removable went.
    removable = (
        len(made["removable"]["dangling"]) + len(made["removable"]["unused"])
        + len(made["removable"]["stopped"]) + 3
    )  # fmt: skip
    assert len(planned) < removable
    # Every step that ran is reported with what it removed.
    assert [step["step"] for step in result["steps"]][0] == "build_cache"

    # Once the target holds, a second run removes nothing.
    before = _ids(daemon, "containers"), _ids(daemon, "images")
    second = run_module("reclaim", _args(daemon, target_free_inodes_percent=20))
    assert not second.get("failed"), second.get("msg")
    assert second["changed"] is False and second["steps"] == []
    assert (_ids(daemon, "containers"), _ids(daemon, "images")) == before


def _audit_says_what_reclaim_would_free(daemon, tmp_path):
    """storage_facts, with the audit's warning threshold at 20% free inodes, plans what
    reclaim's defaults plan with that target."""
    options = {
        "docker_host": "unix://" + daemon.socket,
        "config_path": str(tmp_path / "daemon.json"),
        "host_root": str(tmp_path),
        "probe": False,
        "policy": {
            "warn_free_inodes_percent": 20,
            "warn_free_bytes_percent": 0,
            "min_free_bytes_percent": 0,
        },
    }
    facts = run_module("storage_facts", options, check=True)
    assert not facts.get("failed"), facts.get("msg")
    would = facts["ansible_facts"]["docker_storage"]["reclaim"]
    assert would["checked"] is True, would["problem"]
    # The same numbers: what reclaim's defaults plan with the audit's thresholds as targets.
    plan = run_module(
        "reclaim",
        {"docker_host": "unix://" + daemon.socket, "target_free_inodes_percent": 20,
         "target_free_bytes_percent": 0},
        check=True,
    )  # fmt: skip
    assert would["removed_objects"] == plan["removed_objects"]
    assert [s["step"] for s in would["steps"]] == [s["step"] for s in plan["steps"]]
    assert would["freed"] == plan["freed"]


def test_every_step_spares_what_is_in_use_and_named_volumes(crowded):
    daemon, fs, made = crowded
    # A target the allowed steps cannot reach names the step that would have come next.
    short = run_module(
        "reclaim", _args(daemon, target_free_inodes_percent=90, steps=["build_cache"]), check=True
    )
    assert short.get("failed")
    assert "the next step would have been dangling_images" in short["msg"]
    assert short["next_step"] == "dangling_images"
    result = run_module(
        "reclaim",
        _args(
            daemon,
            target_free_inodes_percent=100,
            target_free_bytes_percent=100,
            steps=[
                "build_cache",
                "dangling_images",
                "stopped_containers",
                "unused_images",
                "orphaned_layers",
                "container_logs",
                "anonymous_volumes",
            ],
            container_logs_larger_than="0",
            anonymous_volumes_older_than="0s",
        ),
    )
    # 100% cannot be reached: the task fails, having run every step, and says so.
    assert result.get("failed")
    assert "not reached" in result["msg"] and "every step has run" in result["msg"]
    containers, images = _ids(daemon, "containers"), _ids(daemon, "images")
    assert containers == {made["keep"]["running"], made["keep"]["kept_container"]}
    assert images == {made["keep"]["image"], made["keep"]["kept_image"]}
    assert _ids(daemon, "volumes") == {"data"}
    # The orphaned layer directory went; every layer left is one the engine names.
    home = os.path.join(daemon.data_root, "overlay2")
    assert not os.path.exists(os.path.join(home, made["removable"]["orphan"]))
    removed = _objects(result)
    assert ("layer", made["removable"]["orphan"]) in removed
    assert any(kind == "build_cache" for kind, _id in removed)
    assert daemon.api("GET", "/containers/%s/json" % made["keep"]["running"])["State"]["Running"]


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"target_free_inodes_percent": -5}, "target_free_inodes_percent is -5.0"),
        ({"target_free_bytes_percent": 150}, "target_free_bytes_percent is 150.0"),
        ({"steps": ["build_cache", "everything"]}, "everything"),
        ({"stopped_containers_older_than": "soon"}, "stopped_containers_older_than is 'soon'"),
        ({"docker_host": "unix:///run/nothing-here.sock"}, "does not answer"),
        ({"data_root": "/nonexistent/docker"}, "data_root /nonexistent/docker does not exist"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_removed(busybox_dockerd, bad, words):
    daemon = busybox_dockerd
    crowded_store.import_small_files(daemon, 10, "dangling", None)
    daemon.docker("create", "--name", "old", "dockerhost-test/busybox", "true")
    before = _ids(daemon, "containers"), _ids(daemon, "images")
    args = _args(daemon, target_free_inodes_percent=100, dangling_images_older_than="0s")
    args.update(bad)
    result = run_module("reclaim", args)
    assert result.get("failed")
    assert words in result["msg"]
    assert "Traceback" not in result.get("module_stderr", "")
    assert (_ids(daemon, "containers"), _ids(daemon, "images")) == before


def _orphan_with_escape(daemon, victim):
    """An orphaned layer directory whose diff holds links out of the store: a symlink to the
    ``victim`` directory and one to a file in it."""
    home = os.path.join(daemon.data_root, "overlay2")
    layer_id = "ab" * 32
    os.makedirs(os.path.join(home, layer_id, "diff"))
    with open(os.path.join(home, layer_id, "link"), "w") as handle:
        handle.write("ORPHANSHORTNAMEFORTESTS00")
    os.symlink("../%s/diff" % layer_id, os.path.join(home, "l", "ORPHANSHORTNAMEFORTESTS00"))
    os.symlink(victim, os.path.join(home, layer_id, "diff", "etc"))
    os.symlink(os.path.join(victim, "passwd"), os.path.join(home, layer_id, "diff", "passwd"))
    return layer_id


def test_an_orphan_is_removed_without_following_its_links_and_only_once_old_enough(
    make_loopfs, start_dockerd, busybox_image, import_test_image, tmp_path
):
    """On ext4 with 128-byte inodes (timestamps in whole seconds, as on older production
    filesystems) the age is read from the ctime, not from an mtime that an image's tar sets
    back, and the links inside go, not what they name."""
    fs = make_loopfs("ext4", size_mb=128, mkfs_args=("-I", "128"))
    daemon = start_dockerd(os.path.join(fs.mount_point, "docker"), storage_driver="overlay2")
    daemon.assert_started()
    import_test_image(daemon, busybox_image)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "passwd").write_text("root:x:0:0\n")
    layer_id = _orphan_with_escape(daemon, str(victim))
    layer = os.path.join(daemon.data_root, "overlay2", layer_id)
    # Layers unpacked from an image carry the mtimes of its tar: years old. Setting them back
    # stamps the ctime with now, in whole seconds on this filesystem.
    for path in (layer, os.path.join(layer, "diff"), os.path.join(layer, "diff", "etc")):
        os.utime(path, (978307200, 978307200), follow_symlinks=False)
    changed = os.lstat(os.path.join(layer, "diff")).st_ctime_ns
    assert changed % 1_000_000_000 == 0, "the filesystem keeps finer than whole seconds"
    args = {
        "docker_host": "unix://" + daemon.socket,
        "steps": ["orphaned_layers"],
        "target_free_inodes_percent": 100,
        "target_free_bytes_percent": 0,
        "fail_when_unreached": False,
    }
    # Younger than the setting by minutes, whatever the load on the machine.
    young = run_module("reclaim", dict(args, orphaned_layers_older_than="10m"))
    assert not young.get("failed"), young.get("msg")
    assert young["removed_objects"] == 0
    assert os.path.isdir(layer)
    # A whole-second ctime can only make the age look longer, never shorter.
    time.sleep(max(0.0, changed / 1e9 + 3.5 - time.time()))
    old = run_module("reclaim", dict(args, orphaned_layers_older_than="3s"))
    assert [o["id"] for step in old["steps"] for o in step["removed"]] == [layer_id]
    assert not os.path.exists(layer)
    assert not os.path.lexists(
        os.path.join(daemon.data_root, "overlay2", "l", "ORPHANSHORTNAMEFORTESTS00")
    )
    assert (victim / "passwd").read_text() == "root:x:0:0\n"
    # The store is whole: busybox still runs.
    assert daemon.docker("run", "--rm", busybox_image.name, "true").returncode == 0


def test_on_the_containerd_image_store_of_28_5_only_what_nothing_uses_goes(
    make_loopfs, start_dockerd, busybox_image, import_test_image, forky_engine, tmp_path
):
    """Docker 28.5 with the containerd image store keeps layers as containerd snapshots, which
    the engine collects itself: reclaim goes through the engine, lists what it cannot measure
    in advance without figures, and the measured figures decide when it stops."""
    fs = make_loopfs("ext4", size_mb=256, mkfs_args=("-N", "6000"))
    config = tmp_path / "engine-daemon.json"
    config.write_text('{"features": {"containerd-snapshotter": true}}')
    daemon = start_dockerd(
        os.path.join(fs.mount_point, "docker"), engine=forky_engine, config_file=str(config)
    )
    daemon.assert_started()
    import_test_image(daemon, busybox_image)
    dangling = crowded_store.import_small_files(daemon, 300, "dangling", None)
    crowded_store.stopped_container(daemon, busybox_image.name, "old", 300)
    daemon.docker("volume", "create", "data")
    daemon.docker("run", "-d", "--name", "web", "-v", "data:/data", busybox_image.name,
                  "sleep", "3600")  # fmt: skip
    # dockerd's own containerd keeps its root under the data-root: one filesystem to judge.
    containerd_root = os.path.join(daemon.data_root, "containerd", "daemon")
    args = _args(daemon, target_free_inodes_percent=100, fail_when_unreached=False)
    args.update(containerd_root=containerd_root)
    args["steps"] = ["dangling_images", "stopped_containers", "unused_images", "orphaned_layers"]
    plan = run_module("reclaim", args, check=True)
    assert not plan.get("failed"), plan.get("msg")
    assert plan["engine"]["image_store"] == "containerd"
    assert list(plan["before"]) == ["data_root"]
    planned = _objects(plan)
    assert ("image", dangling) in planned
    assert all(o["inodes"] is None for step in plan["steps"] for o in step["removed"])
    result = run_module("reclaim", args)
    assert not result.get("failed"), result.get("msg")
    assert _objects(result) == planned
    assert result["freed"]["data_root"]["inodes"] > 300
    web = daemon.api("GET", "/containers/web/json")
    assert web["State"]["Running"]
    assert web["Image"] in _ids(daemon, "images")
    assert "data" in _ids(daemon, "volumes")
    assert dangling not in _ids(daemon, "images")
