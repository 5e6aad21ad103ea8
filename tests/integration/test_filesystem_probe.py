"""The overlay/d_type probe on real filesystems, in the situations where it must say "unknown"
or name the failure instead of judging a driver unsupported or leaving debris behind; and the
relocation preflight's metadata check on filesystems that do and do not keep what overlay2
writes."""

import json
import os
import select
import signal
import stat
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support")
)
from collection_path import collections_root  # noqa: E402
from harness import run  # noqa: E402

sys.path.insert(0, collections_root())
from ansible_collections.dockerhost.storage.plugins.module_utils._filesystem_probe import (  # noqa: E402
    probe_directory,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import (  # noqa: E402
    read_mountinfo,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._path_users import (  # noqa: E402
    mounts_inside,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._relocation import (  # noqa: E402
    metadata_problems,
)


def _probe_leftovers(directory):
    return [name for name in os.listdir(directory) if name.startswith(".dockerhost-storage-probe")]


def _overlay_mounts_below(directory):
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        return [line for line in handle if " %s/" % directory in line and " - overlay " in line]


def test_probe_mounts_overlay_and_cleans_up(make_loopfs):
    fs = make_loopfs("ext4", size_mb=64)
    result = probe_directory(fs.mount_point)
    assert result["overlay_ok"] is True and result["d_type"] is True
    assert result["cleanup_error"] is None
    assert _probe_leftovers(fs.mount_point) == []
    assert _overlay_mounts_below(fs.mount_point) == []


def test_probe_skips_the_mount_when_overlay_is_not_registered(make_loopfs):
    fs = make_loopfs("ext4", size_mb=64)
    result = probe_directory(fs.mount_point, mount_overlay=False)
    assert result["overlay_ok"] is None
    assert "test mount was skipped" in result["overlay_error"]
    assert result["d_type"] is True
    assert _probe_leftovers(fs.mount_point) == []


def test_full_filesystem_is_named_not_raised(make_loopfs):
    fs = make_loopfs("ext4", size_mb=32)
    filler = os.path.join(fs.mount_point, "filler")
    # Root may use the reserved blocks too: write until the kernel says ENOSPC.
    with open(filler, "wb") as handle:
        chunk = b"\0" * (1 << 20)
        with pytest.raises(OSError) as raised:
            while True:
                handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
    assert raised.value.errno == 28
    # Fill the last partial block and the inode tables' slack with empty files.
    count = 0
    try:
        while True:
            with open(os.path.join(fs.mount_point, "f%d" % count), "wb") as handle:
                handle.write(b"x" * 4096)
            count += 1
    except OSError:
        pass
    result = probe_directory(fs.mount_point)
    assert result["writable"] is False
    assert "No space left on device (ENOSPC)" in (result["write_error"] or "")
    assert _probe_leftovers(fs.mount_point) == []


def _probe_as_nobody(directory):
    code = (
        "import json, sys; sys.path.insert(0, %r)\n"
        "from ansible_collections.dockerhost.storage.plugins.module_utils._filesystem_probe "
        "import probe_directory\n"
        "print(json.dumps(probe_directory(%r)))" % (collections_root(), directory)
    )
    completed = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, LANG="C", LC_ALL="C"),
    )
    return json.loads(completed.stdout)


def test_without_privilege_the_verdict_is_unknown_not_unsupported(make_loopfs):
    fs = make_loopfs("ext4", size_mb=64)
    os.chmod(fs.mount_point, 0o1777)

    # pytest's temporary directories are 0700: nobody cannot even reach the mount point.
    unreachable = _probe_as_nobody(fs.mount_point)
    assert unreachable["writable"] is None and unreachable["write_error"] is None
    assert unreachable["d_type"] is None
    assert "Permission denied (EACCES)" in unreachable["d_type_error"]
    assert "become: true" in unreachable["d_type_error"]

    # Reachable and writable, but mounting needs CAP_SYS_ADMIN.
    directory = fs.mount_point
    while directory != "/":
        os.chmod(directory, os.stat(directory).st_mode | 0o001)
        directory = os.path.dirname(directory)
    result = _probe_as_nobody(fs.mount_point)
    assert result["overlay_ok"] is None
    assert "not permitted" in result["overlay_error"] and "become" in result["overlay_error"]
    assert result["d_type"] is True
    assert _probe_leftovers(fs.mount_point) == []


# A probe in its own process that stops while its test mount exists: it prints the process id of
# the process holding the mount, waits for a line on stdin, then finishes and prints its result.
_PAUSED_PROBE = """\
import json, os, sys
sys.path.insert(0, {root!r})
from ansible_collections.dockerhost.storage.plugins.module_utils._filesystem_probe import (
    probe_directory,
)


def pause():
    print(os.getpid(), flush=True)
    sys.stdin.readline()


print(json.dumps(probe_directory({directory!r}, _while_mounted=pause)), flush=True)
"""


def _shared_ext4(make_loopfs):
    """An ext4 mounted with shared propagation, as systemd mounts everything: a mount made in a
    copied namespace below it comes back to the host unless that namespace is made private.
    (This machine has no systemd, and its mounts are private unless made shared.)"""
    fs = make_loopfs("ext4", size_mb=64)
    run(["mount", "--make-shared", fs.mount_point])
    [mount] = [m for m in read_mountinfo() if m.mount_point == fs.mount_point]
    assert any(field.startswith("shared:") for field in mount.optional_fields), mount
    return fs


def _start_paused_probe(directory):
    """``(process, holder pid)``: a probe stopped while its test mount exists."""
    prober = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_PROBE.format(root=collections_root(), directory=directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, LANG="C", LC_ALL="C"),
    )
    line = ""
    if select.select([prober.stdout], [], [], 60)[0]:
        line = prober.stdout.readline()
    if not line.strip().isdigit():
        prober.kill()
        stderr = prober.communicate(timeout=30)[1]
        pytest.fail("the probe never reached its test mount: %s" % (line + stderr).strip())
    return prober, int(line)


def _mounts_seen_by(pid, directory):
    return mounts_inside(directory, read_mountinfo("/proc/%d/mountinfo" % pid))


def _has_ended(pid, timeout=10):
    """True once ``pid`` is gone or a zombie (a zombie holds no mounts and no files)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open("/proc/%d/stat" % pid, encoding="utf-8") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _end(prober, holder):
    if prober.poll() is None:
        prober.kill()
        prober.wait(timeout=30)
    if holder is not None and not _has_ended(holder, timeout=0):
        os.kill(holder, signal.SIGKILL)


def test_a_probe_killed_while_its_test_mount_exists_leaves_no_mount_behind(make_loopfs):
    fs = _shared_ext4(make_loopfs)
    prober, holder = _start_paused_probe(fs.mount_point)
    try:
        # The test mount exists right now, for the process that made it.
        held = _mounts_seen_by(holder, fs.mount_point)
        assert len(held) == 1 and held[0].endswith("/merged (overlay)"), held
        os.kill(prober.pid, signal.SIGKILL)
        prober.wait(timeout=30)
        assert _has_ended(holder), "the process holding the test mount outlived the probe"
    finally:
        _end(prober, holder)

    assert _overlay_mounts_below(fs.mount_point) == []
    # What data_root's final pass asks of a data-root: nothing is mounted inside it.
    assert mounts_inside(fs.mount_point, read_mountinfo()) == []
    # Left behind: the probe's directory, with nothing mounted in it.
    assert len(_probe_leftovers(fs.mount_point)) == 1


def test_the_next_probe_removes_what_a_killed_probe_left(make_loopfs):
    fs = make_loopfs("ext4", size_mb=64)
    prober, holder = _start_paused_probe(fs.mount_point)
    try:
        os.kill(prober.pid, signal.SIGKILL)
        prober.wait(timeout=30)
        assert _has_ended(holder)
    finally:
        _end(prober, holder)
    leftovers = _probe_leftovers(fs.mount_point)
    assert len(leftovers) == 1

    # Just made, it might belong to a probe that has not locked it yet: it stays.
    result = probe_directory(fs.mount_point)
    assert result["overlay_ok"] is True and result["cleanup_error"] is None
    assert _probe_leftovers(fs.mount_point) == leftovers

    an_hour_ago = time.time() - 3600
    os.utime(os.path.join(fs.mount_point, leftovers[0]), (an_hour_ago, an_hour_ago))
    result = probe_directory(fs.mount_point)
    assert result["overlay_ok"] is True and result["cleanup_error"] is None
    assert _probe_leftovers(fs.mount_point) == []


def test_a_running_probe_keeps_its_directory_while_another_probe_runs(make_loopfs):
    fs = _shared_ext4(make_loopfs)
    prober, holder = _start_paused_probe(fs.mount_point)
    try:
        [running] = _probe_leftovers(fs.mount_point)
        # However old it looks, a directory a live probe holds is not debris.
        an_hour_ago = time.time() - 3600
        os.utime(os.path.join(fs.mount_point, running), (an_hour_ago, an_hour_ago))
        other = probe_directory(fs.mount_point)
        assert other["overlay_ok"] is True and other["cleanup_error"] is None
        assert _probe_leftovers(fs.mount_point) == [running]

        stdout = prober.communicate("\n", timeout=60)[0]
    finally:
        _end(prober, holder)
    result = json.loads(stdout.splitlines()[-1])
    assert result["overlay_ok"] is True and result["d_type"] is True
    assert result["cleanup_error"] is None
    assert _probe_leftovers(fs.mount_point) == []
    assert _overlay_mounts_below(fs.mount_point) == []


def test_a_leftover_with_a_mount_inside_is_named_not_removed(make_loopfs, make_overlay):
    # Releases that mounted in the host's namespace could leave their overlay mounted.
    fs = make_loopfs("ext4", size_mb=64)
    leftover = os.path.join(fs.mount_point, ".dockerhost-storage-probe-earlier")
    os.mkdir(leftover)
    overlay = make_overlay(leftover)
    an_hour_ago = time.time() - 3600
    os.utime(leftover, (an_hour_ago, an_hour_ago))

    result = probe_directory(fs.mount_point)
    assert result["overlay_ok"] is True
    assert result["cleanup_error"] == (
        "an earlier probe left %s mounted; unmount it (umount %s) and remove %s"
        % (overlay.merged, overlay.merged, leftover)
    )
    assert os.path.ismount(overlay.merged)
    assert _probe_leftovers(fs.mount_point) == [os.path.basename(leftover)]


def _check_leftovers(directory):
    return [name for name in os.listdir(directory) if name.startswith(".dockerhost-storage-check")]


def test_metadata_preflight_finds_nothing_missing_on_ext4(make_loopfs):
    fs = make_loopfs("ext4", size_mb=64)
    assert metadata_problems(fs.mount_point) == []
    assert _check_leftovers(fs.mount_point) == []


def test_metadata_preflight_names_the_xattrs_ramfs_cannot_keep(make_loopfs):
    # ramfs keeps no extended attributes at all (tmpfs keeps trusted.* and security.*), but
    # takes device nodes: the two xattr namespaces are named, and nothing else.
    fs = make_loopfs("ramfs")
    assert metadata_problems(fs.mount_point) == [
        "the filesystem of %s does not keep trusted.* extended attributes: Operation not "
        "supported" % fs.mount_point,
        "the filesystem of %s does not keep security.* extended attributes: Operation not "
        "supported" % fs.mount_point,
    ]
    assert _check_leftovers(fs.mount_point) == []


def test_metadata_preflight_names_a_read_only_filesystem(make_loopfs):
    fs = make_loopfs("ext4", size_mb=64, mount_options=("ro",))
    assert metadata_problems(fs.mount_point) == [
        "cannot create a directory in %s: Read-only file system" % fs.mount_point
    ]


def test_nodev_does_not_stop_whiteouts_so_a_nodev_tmpfs_passes(make_loopfs, make_overlay):
    # nodev forbids opening device nodes, not making them; and the kernel lets anyone make a
    # 0/0 character device (a whiteout). So overlay works on a nodev filesystem, and the
    # preflight must not refuse one.
    fs = make_loopfs("tmpfs", size_mb=16, mount_options=("nodev",))
    [mount] = [m for m in read_mountinfo() if m.mount_point == fs.mount_point]
    assert "nodev" in mount.mount_options.split(",")
    assert metadata_problems(fs.mount_point) == []
    assert _check_leftovers(fs.mount_point) == []

    lower = os.path.join(fs.mount_point, "lower")
    os.mkdir(lower)
    with open(os.path.join(lower, "gone"), "w", encoding="utf-8") as handle:
        handle.write("deleted through the merged view\n")
    overlay = make_overlay(fs.mount_point, lowers=[lower])
    os.unlink(os.path.join(overlay.merged, "gone"))
    whiteout = os.lstat(os.path.join(overlay.upper, "gone"))
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == os.makedev(0, 0)
