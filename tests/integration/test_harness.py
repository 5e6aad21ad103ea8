"""The harness itself: each fixture makes what it claims, and its teardown undoes it for real."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import pytest
from harness import LoopfsError, import_image, mount_at, mounts_at_or_below, run
from harness.images import ROOTFS_SHA256_LABEL
from harness.loopfs import loop_backing_file

pytestmark = pytest.mark.integration

INTEGRATION_DIR = os.path.dirname(os.path.abspath(__file__))


def attached_loop_devices(under: str) -> list[str]:
    """``losetup --list`` lines whose backing file lies under ``under``."""
    listing = run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"]).stdout
    return [line for line in listing.splitlines() if under in line]


def ext_features(device: str) -> set[str]:
    for line in run(["dumpe2fs", "-h", device]).stdout.splitlines():
        if line.startswith("Filesystem features:"):
            return set(line.partition(":")[2].split())
    raise AssertionError("dumpe2fs -h %s printed no feature line" % device)


def test_ext4_has_the_inode_count_asked_for(make_loopfs):
    fs = make_loopfs("ext4", inodes=4096)

    assert os.statvfs(fs.mount_point).f_files == 4096
    header, line = run(["df", "-i", "-P", fs.mount_point]).stdout.splitlines()
    assert header.split()[1] == "Inodes" and line.split()[1] == "4096"
    mount = mount_at(fs.mount_point)
    assert (mount.fstype, mount.source) == ("ext4", fs.device)
    assert loop_backing_file(fs.device) == fs.image_path


def test_ext4_feature_set_is_applied(make_loopfs):
    plain = make_loopfs("ext4")
    stripped = make_loopfs("ext4", features=["^filetype", "^has_journal"])

    assert {"filetype", "has_journal"} <= ext_features(plain.device)
    assert not {"filetype", "has_journal"} & ext_features(stripped.device)


def test_xfs_with_ftype_1(make_loopfs):
    fs = make_loopfs("xfs", mkfs_args=("-n", "ftype=1"))

    assert mount_at(fs.mount_point).fstype == "xfs"
    assert "ftype=1" in run(["xfs_info", fs.mount_point]).stdout


@pytest.mark.parametrize("fstype, options", [("ext2", ""), ("btrfs", ""), ("tmpfs", "size=65536k")])
def test_filesystem_type_shows_in_mountinfo(make_loopfs, fstype, options):
    fs = make_loopfs(fstype, size_mb=64 if fstype == "tmpfs" else None)

    mount = mount_at(fs.mount_point)
    assert mount.fstype == fstype
    assert options in mount.super_options
    if fstype != "tmpfs":
        assert mount.source == fs.device


def test_tmpfs_inode_count(make_loopfs):
    fs = make_loopfs("tmpfs", inodes=1000)

    assert fs.device is None
    assert os.statvfs(fs.mount_point).f_files == 1000


@pytest.mark.parametrize(
    "mkfs_args, mount_options, kernel_words",
    [
        # Kernels without CONFIG_XFS_SUPPORT_V4 (this one) cannot mount V4 (ftype=0) xfs ...
        (("-m", "crc=0", "-n", "ftype=0"), (), "V4"),
        # ... and without CONFIG_XFS_QUOTA refuse prjquota.
        (("-n", "ftype=1"), ("prjquota",), "quota"),
    ],
    ids=["xfs-v4-ftype0", "xfs-prjquota"],
)
def test_filesystem_the_kernel_refuses_fails_cleanly(
    make_loopfs, mkfs_args, mount_options, kernel_words
):
    try:
        fs = make_loopfs("xfs", mkfs_args=mkfs_args, mount_options=mount_options)
    except LoopfsError as error:
        # The error carries the kernel's reason, and nothing is left behind.
        assert kernel_words in str(error)
        assert attached_loop_devices(make_loopfs.workdir) == []
        assert mounts_at_or_below(make_loopfs.workdir) == []
        assert os.listdir(make_loopfs.workdir) == []
    else:
        # A kernel with that support mounts it with what was asked.
        mount = mount_at(fs.mount_point)
        assert mount.fstype == "xfs"
        assert all(option in mount.super_options for option in mount_options)


def test_loopfs_teardown_removes_every_mount_the_loop_device_and_the_image(make_loopfs):
    with make_loopfs("ext4") as fs:
        # What a stopped dockerd leaves: a directory bind-mounted onto itself, with a mount
        # inside; and the mount point itself bind-mounted onto itself.
        data_root = os.path.join(fs.mount_point, "docker")
        os.makedirs(os.path.join(data_root, "shm"))
        run(["mount", "--bind", data_root, data_root])
        run(["mount", "-t", "tmpfs", "shm", os.path.join(data_root, "shm")])
        run(["mount", "--bind", fs.mount_point, fs.mount_point])
        assert len(mounts_at_or_below(fs.mount_point)) == 4
        device, image, workdir = fs.device, fs.image_path, fs.workdir

    assert mounts_at_or_below(workdir) == []
    assert loop_backing_file(device) != image
    assert attached_loop_devices(workdir) == []
    assert not os.path.exists(image)
    assert not os.path.exists(workdir)


def test_tmpfs_teardown_unmounts(make_loopfs):
    with make_loopfs("tmpfs") as fs:
        assert mount_at(fs.mount_point).fstype == "tmpfs"
    assert mounts_at_or_below(fs.mount_point) == []


def test_overlay_merges_lowers_and_writes_to_upper(make_overlay, tmp_path):
    top, bottom = tmp_path / "top", tmp_path / "bottom"
    top.mkdir()
    bottom.mkdir()
    (top / "from-top").write_text("top\n")
    (bottom / "from-bottom").write_text("bottom\n")
    (top / "shadowed").write_text("top wins\n")
    (bottom / "shadowed").write_text("hidden\n")

    with make_overlay(tmp_path / "ovl", lowers=[top, bottom]) as overlay:
        merged = overlay.merged
        assert sorted(os.listdir(merged)) == ["from-bottom", "from-top", "shadowed"]
        with open(os.path.join(merged, "shadowed")) as handle:
            assert handle.read() == "top wins\n"

        with open(os.path.join(merged, "new"), "w") as handle:
            handle.write("written\n")
        with open(os.path.join(merged, "from-bottom"), "a") as handle:
            handle.write("changed\n")
        os.unlink(os.path.join(merged, "from-top"))

        assert sorted(os.listdir(overlay.upper)) == ["from-bottom", "from-top", "new"]
        assert (bottom / "from-bottom").read_text() == "bottom\n"  # copied up, not changed
        whiteout = os.lstat(os.path.join(overlay.upper, "from-top"))
        assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
        assert (top / "from-top").exists()

        mount = mount_at(merged)
        assert mount.fstype == "overlay"
        assert "upperdir=%s" % overlay.upper in mount.super_options
    assert mount_at(merged) is None


def test_overlay_with_counted_lowers(make_overlay, tmp_path):
    overlay = make_overlay(tmp_path, lowers=3)

    assert [os.path.basename(path) for path in overlay.lowers] == ["lower1", "lower2", "lower3"]
    assert "lowerdir=%s" % ":".join(overlay.lowers) in mount_at(overlay.merged).super_options


def test_private_dockerd_on_ext4_uses_overlay2_and_runs_busybox(
    make_loopfs, start_dockerd, busybox_image, import_test_image
):
    fs = make_loopfs("ext4", size_mb=512)
    # The data-root is the mount point itself, as with a filesystem dedicated to Docker.
    daemon = start_dockerd(fs.mount_point)
    daemon.assert_started()

    info = daemon.info()
    assert info["Driver"] == "overlay2"
    assert info["DockerRootDir"] == fs.mount_point
    assert ["Backing Filesystem", "extfs"] in info["DriverStatus"]

    import_test_image(daemon, busybox_image)
    image = json.loads(daemon.docker("image", "inspect", busybox_image.name).stdout)[0]
    assert image["Config"]["Cmd"] == ["/bin/sh"]
    hello = daemon.docker("run", "--rm", "--network", "none", busybox_image.name, "echo", "hello")
    assert hello.stdout == "hello\n"

    daemon.stop()
    assert not os.path.exists("/proc/%d" % daemon.pid)
    assert not os.path.exists(daemon.socket)
    # Only the loop filesystem is left: the data-root bind mount dockerd left is gone.
    assert [m.source for m in mounts_at_or_below(fs.mount_point)] == [fs.device]
    assert not os.path.exists(daemon.run_dir)


@pytest.mark.parametrize(
    "driver, reason",
    [
        ("btrfs", "prerequisites for driver not satisfied (wrong filesystem?)"),
        ("aufs", "driver not supported"),
    ],
)
def test_private_dockerd_refusal_is_reported(make_loopfs, start_dockerd, driver, reason):
    fs = make_loopfs("ext4")
    began = time.monotonic()
    daemon = start_dockerd(os.path.join(fs.mount_point, "docker"), storage_driver=driver)

    assert not daemon.started
    assert daemon.refusal == "failed to start daemon: error initializing graphdriver: " + reason
    assert time.monotonic() - began < 15, "a refusing dockerd must be noticed quickly"
    assert daemon.process.poll() is not None


def test_two_private_dockerds_answer_side_by_side(make_loopfs, start_dockerd):
    host_bridge = os.path.exists("/sys/class/net/docker0")
    fs = make_loopfs("ext4", size_mb=512)

    first = start_dockerd(os.path.join(fs.mount_point, "first"))
    second = start_dockerd(os.path.join(fs.mount_point, "second"))
    first.assert_started()
    second.assert_started()

    assert first.socket != second.socket
    assert first.info()["DockerRootDir"] == os.path.join(fs.mount_point, "first")
    assert second.info()["DockerRootDir"] == os.path.join(fs.mount_point, "second")
    assert first.info()["ID"] != second.info()["ID"]
    # Their --bridge=none must not have taken the host daemon's bridge away.
    assert os.path.exists("/sys/class/net/docker0") == host_bridge


def test_busybox_dockerd_fixture_and_bookworm_image(busybox_dockerd, bookworm_python_image):
    daemon = busybox_dockerd
    assert daemon.info()["Driver"] == "overlay2"
    label = daemon.docker(
        "image",
        "inspect",
        "--format",
        '{{index .Config.Labels "%s"}}' % ROOTFS_SHA256_LABEL,
        "dockerhost-test/busybox:latest",
    ).stdout.strip()
    assert len(label) == 64

    import_image(daemon, bookworm_python_image)
    version = daemon.docker(
        "run",
        "--rm",
        "--network",
        "none",
        bookworm_python_image.name,
        "python3",
        "-c",
        "import sys; print('%d.%d' % sys.version_info[:2])",
    )
    assert version.stdout == "3.11\n"


INNER_CONFTEST = """
import importlib.util
import os

# The integration conftest, fixtures and hooks included, under another module name.
spec = importlib.util.spec_from_file_location(
    "integration_conftest", os.path.join(os.environ["INTEGRATION_DIR"], "conftest.py")
)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
globals().update({k: v for k, v in vars(module).items() if not k.startswith("__")})
"""

INNER_TEST = """
import json
import os


def test_fails_with_everything_set_up(make_loopfs, make_overlay, start_dockerd, tmp_path):
    fs = make_loopfs("ext4")
    overlay = make_overlay(tmp_path)
    daemon = start_dockerd(os.path.join(fs.mount_point, "docker"))
    daemon.assert_started()
    state = dict(
        workdir=fs.workdir,
        image=fs.image_path,
        merged=overlay.merged,
        pid=daemon.pid,
        run_dir=daemon.run_dir,
    )
    with open(os.environ["STATE_FILE"], "w") as handle:
        json.dump(state, handle)
    assert False, "this test fails on purpose"
"""


def test_fixtures_tear_down_after_a_failing_test(tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "conftest.py").write_text(INNER_CONFTEST)
    (inner / "test_inner.py").write_text(INNER_TEST)
    state_file = tmp_path / "state.json"
    env = dict(os.environ, INTEGRATION_DIR=INTEGRATION_DIR, STATE_FILE=str(state_file))
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(inner)]
    argv += ["--basetemp", str(tmp_path / "basetemp"), str(inner)]
    completed = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "this test fails on purpose" in completed.stdout
    assert "API listen on" in completed.stdout, "the failure report shows the dockerd log"

    state = json.loads(state_file.read_text())
    assert mounts_at_or_below(state["workdir"]) == []
    assert mount_at(state["merged"]) is None
    assert attached_loop_devices(state["workdir"]) == []
    assert not os.path.exists(state["image"])
    assert not os.path.exists("/proc/%d" % state["pid"])
    assert not os.path.exists(state["run_dir"])
