"""userns-remap (CIS 2.9) on real engines: where dockerd keeps its store, and what the audit,
the capacity breakdown and the layer store check make of it.

The host's dockerd 20.10 and forky's 28.5 (chrooted), each private, on a loop filesystem; the
busybox test image is imported from its cached tarball, nothing is pulled. With
``"userns-remap": "default"`` dockerd adds the user dockremap and its ranges to /etc/passwd,
/etc/group, /etc/subuid and /etc/subgid when they are missing (the chrooted engine writes them
into its own throw-away view); the fixture takes them out again when this test added them.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile

import pytest
from ansible_module import run_module
from harness import LoopfsFactory, import_image

pytestmark = pytest.mark.integration

# dockerd's own words when a directory on the way to the remapped root blocks it (20.10).
BLOCKED = "restricts access to the remapped root uid/gid"


@pytest.fixture(scope="module")
def dockremap():
    """The user ``default`` maps to; removed after the module when dockerd created it here."""
    try:
        pwd.getpwnam("dockremap")
        existed = True
    except KeyError:
        existed = False
    yield
    try:
        pwd.getpwnam("dockremap")
    except KeyError:
        return
    if not existed:
        # userdel takes out its /etc/subuid and /etc/subgid lines as well.
        subprocess.run(
            ["userdel", "dockremap"],
            check=True,
            env={"LANG": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )


@pytest.fixture
def open_loopfs():
    """Loop filesystems under a directory every user may traverse (pytest's own temporary
    directories are 0700, which the remapped root cannot pass: see the refusal test)."""
    workdir = tempfile.mkdtemp(prefix="dockerhost-userns-", dir="/var/tmp")
    os.chmod(workdir, 0o755)
    factory = LoopfsFactory(workdir)

    def make(*args, **kwargs):
        fs = factory(*args, **kwargs)
        os.chmod(os.path.dirname(fs.mount_point), 0o755)
        return fs

    yield make
    factory.destroy_all()
    shutil.rmtree(workdir, ignore_errors=True)


def _lowest_start(path, name):
    with open(path, encoding="utf-8") as handle:
        starts = [int(line.split(":")[1]) for line in handle if line.split(":")[0] == name]
    return min(starts)


def _config(directory, engine=None, **settings):
    """A daemon.json of the test's own (20.10 needs a trust key path out of /etc/docker)."""
    path = os.path.join(str(directory), "daemon.json")
    if engine is None:
        settings["deprecated-key-path"] = os.path.join(str(directory), "key.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(settings, handle)
    return path


def _facts(docker_host, config_path, **options):
    result = run_module(
        "storage_facts",
        dict(docker_host=docker_host, config_path=config_path, probe=False, **options),
        check=True,
    )
    assert not result.get("failed"), result.get("msg")
    facts = result["ansible_facts"]["docker_storage"]
    return facts, {check["check"]: check for check in facts["checks"]}


def test_a_remapped_dockerd_keeps_its_store_in_the_remapped_root_and_the_audit_follows_it(
    open_loopfs, start_dockerd, busybox_image, dockremap, tmp_path
):
    fs = open_loopfs("ext4", size_mb=512)
    data_root = os.path.join(fs.mount_point, "docker")
    config = _config(tmp_path, **{"userns-remap": "default", "storage-driver": "overlay2"})
    daemon = start_dockerd(data_root, config_file=config)
    daemon.assert_started()
    import_image(daemon, busybox_image)
    daemon.docker("run", "-d", "--name", "sleeper", busybox_image.name, "sleep", "600")
    uid = _lowest_start("/etc/subuid", "dockremap")
    gid = _lowest_start("/etc/subgid", "dockremap")
    name = "%d.%d" % (uid, gid)
    remapped = os.path.join(data_root, name)

    # The layout dockerd made: the data-root holds the remapped root and nothing else.
    assert daemon.info()["DockerRootDir"] == remapped
    assert os.listdir(data_root) == [name]
    for path in (data_root, remapped):
        st = os.stat(path)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o710, 0, gid), path
    assert os.path.isdir(os.path.join(remapped, "overlay2", "l"))
    assert os.path.isdir(os.path.join(remapped, "image", "overlay2", "layerdb"))
    inside = daemon.docker("exec", "sleeper", "cat", "/proc/self/uid_map").stdout.split()
    assert inside == ["0", str(uid), "65536"]

    docker_host = "unix://" + daemon.socket
    facts, checks = _facts(docker_host, config)
    assert facts["data_root"] == data_root and facts["data_root_source"] == "engine"
    remap = facts["userns_remap"]
    assert (remap["enabled"], remap["engine"], remap["setting"]) == (True, True, "default")
    assert (remap["remapped_root"], remap["remapped_root_source"]) == (remapped, "engine")
    assert (remap["uid"], remap["gid"], remap["blocked_by"]) == (uid, gid, None)
    result = checks["userns_remap"]
    assert (result["cis"], result["status"]) == ("2.9", "pass")
    assert "the engine keeps its storage in %s" % remapped in result["message"]
    # The container's merged mount is found where the engine keeps it.
    assert checks["merged_mounts"]["status"] == "pass"
    assert facts["mounts"]["summary"]["running"] == 1

    usage = run_module("capacity_info", {"docker_host": docker_host, "breakdown": True})
    assert not usage.get("failed"), usage.get("msg")
    assert usage["data_root"] == data_root
    assert {name + "/overlay2", name + "/image", name + "/containers"} <= set(
        usage["breakdown"]["directories"]
    )
    assert usage["breakdown"]["top_layers"]
    assert {layer["parent"] for layer in usage["breakdown"]["top_layers"]} == {name + "/overlay2"}

    store = run_module("mounts_info", {"docker_host": docker_host, "check_store": True})
    assert not store.get("failed"), store.get("msg")
    assert store["data_root"] == data_root
    assert store["store"]["path"] == os.path.join(remapped, "overlay2")
    assert store["store"]["checked"] and store["store"]["layers"] >= 3
    assert store["store"]["problems"] == [] and store["store"]["orphaned_layers"] == []

    # With the engine stopped, the remapped root comes from daemon.json and /etc/subuid.
    daemon.stop()
    # Nothing of its run directory is left in /run, the remapped one beside it included.
    assert glob.glob(glob.escape(daemon.run_dir) + "*") == []
    facts, checks = _facts(
        "unix://" + os.path.join(str(tmp_path), "none.sock"), config, data_root=data_root
    )
    assert facts["docker"]["state"] == "stopped"
    assert facts["userns_remap"]["remapped_root"] == remapped
    assert facts["userns_remap"]["remapped_root_source"] == "subuid"
    assert checks["userns_remap"]["status"] == "pass"
    usage = run_module(
        "capacity_info",
        {
            "docker_host": "unix://" + os.path.join(str(tmp_path), "none.sock"),
            "config_path": config,
            "data_root": data_root,
            "breakdown": True,
        },
    )
    assert not usage.get("failed"), usage.get("msg")
    assert {layer["parent"] for layer in usage["breakdown"]["top_layers"]} == {name + "/overlay2"}


def test_without_userns_remap_the_check_warns_as_cis_scores_it(busybox_dockerd):
    facts, checks = _facts("unix://" + busybox_dockerd.socket, busybox_dockerd.config_file)
    assert facts["userns_remap"]["enabled"] is False
    assert facts["userns_remap"]["remapped_root"] is None
    assert (checks["userns_remap"]["cis"], checks["userns_remap"]["status"]) == ("2.9", "warn")
    assert "user namespace remapping is off" in checks["userns_remap"]["message"]


def test_a_data_root_the_remapped_root_cannot_reach_stops_dockerd_and_fails_the_check(
    make_loopfs, start_dockerd, dockremap, tmp_path
):
    # pytest's temporary directories are 0700: the remapped root cannot pass them.
    fs = make_loopfs("ext4", size_mb=256)
    data_root = os.path.join(fs.mount_point, "docker")
    config = _config(tmp_path, **{"userns-remap": "default"})
    daemon = start_dockerd(data_root, config_file=config)
    assert not daemon.started
    assert BLOCKED in daemon.refusal
    no_engine = "unix://" + os.path.join(str(tmp_path), "none.sock")
    facts, checks = _facts(no_engine, config, data_root=data_root)
    blocked = facts["userns_remap"]["blocked_by"]
    assert blocked and (data_root + "/").startswith(blocked + "/")
    assert not os.stat(blocked).st_mode & stat.S_IXOTH
    result = checks["userns_remap"]
    assert (result["cis"], result["status"]) == ("2.9", "fail")
    assert "cannot traverse %s: dockerd refuses to start" % blocked in result["message"]
    os.chmod(blocked, 0o711)
    facts, checks = _facts(no_engine, config, data_root=data_root)
    # The next directory up may block as well; the one fixed no longer does.
    assert facts["userns_remap"]["blocked_by"] != blocked


def test_dockerd_28_takes_userns_remap_with_the_containerd_store_and_unpacks_images_twice(
    open_loopfs, start_dockerd, forky_engine, busybox_image, tmp_path
):
    fs = open_loopfs("ext4", size_mb=512)
    data_root = os.path.join(fs.mount_point, "docker")
    settings = {"userns-remap": "default", "features": {"containerd-snapshotter": True}}
    config = _config(tmp_path, engine=forky_engine, **settings)
    daemon = start_dockerd(data_root, config_file=config, engine=forky_engine, timeout=60)
    # No refusal: 28.5 starts with both (so did trixie's 26.1, see docs/drivers.md).
    daemon.assert_started()
    info = daemon.info()
    assert "name=userns" in info["SecurityOptions"]
    assert info["DriverStatus"] == [["driver-type", "io.containerd.snapshotter.v1"]]
    remapped = info["DockerRootDir"]
    name = os.path.basename(remapped)
    assert os.path.dirname(remapped) == data_root and os.listdir(data_root) == [name]
    uid = int(name.split(".")[0])
    import_image(daemon, busybox_image)
    # A container (created only: a chrooted runc cannot make a user namespace, see
    # docs/testing.md) gets its image unpacked again, chowned to the remapped root, beside the
    # copy as pulled; the engine's own containerd keeps both in the remapped root.
    daemon.docker("create", busybox_image.name, "true")
    snapshots = os.path.join(
        remapped, "containerd", "daemon", "io.containerd.snapshotter.v1.overlayfs", "snapshots"
    )
    owners = sorted(
        os.stat(os.path.join(snapshots, entry, "fs", "bin", "busybox")).st_uid
        for entry in os.listdir(snapshots)
        if os.path.exists(os.path.join(snapshots, entry, "fs", "bin", "busybox"))
    )
    assert owners == [0, uid]

    facts, checks = _facts("unix://" + daemon.socket, config)
    assert facts["data_root"] == data_root
    assert facts["engine"]["image_store"] == "containerd"
    assert facts["userns_remap"]["remapped_root"] == remapped
    result = checks["userns_remap"]
    assert (result["cis"], result["status"]) == ("2.9", "pass")
    assert "unpacked twice" in result["message"]
