"""The overlay/d_type probe on real filesystems, in the situations where it must say "unknown"
or name the failure instead of judging a driver unsupported or leaving debris behind."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support")
)
from collection_path import collections_root  # noqa: E402

sys.path.insert(0, collections_root())
from ansible_collections.dockerhost.storage.plugins.module_utils._filesystem_probe import (  # noqa: E402
    probe_directory,
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
