"""The backup copy of a file that may hold credentials: named as Ansible names backups, readable
by the file's owner only from the moment it exists, and never left half made or world-readable,
even when the process making it is killed."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time

import pytest
from collection_path import collections_root

from ansible_collections.dockerhost.storage.plugins.module_utils._atomic_file import (
    BackupError,
    backup_name,
    make_backup,
)

SECRET = b'{"proxies": {"http-proxy": "http://user:s3cret@proxy.example:3128"}}\n'


def _file(tmp_path, data=SECRET, mode=0o644):
    path = tmp_path / "daemon.json"
    path.write_bytes(data)
    os.chmod(str(path), mode)
    return str(path)


def test_backup_is_named_like_ansible_backups_and_readable_by_the_owner_only(tmp_path):
    path = _file(tmp_path, mode=0o644)
    os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789))
    before = os.stat(path)

    copy = make_backup(path)

    assert re.fullmatch(
        re.escape(path) + r"\.%d\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~" % os.getpid(), copy
    ), copy
    with open(copy, "rb") as handle:
        assert handle.read() == SECRET
    copied = os.lstat(copy)
    assert stat.S_ISREG(copied.st_mode)
    assert stat.S_IMODE(copied.st_mode) == 0o600
    assert (copied.st_uid, copied.st_gid) == (before.st_uid, before.st_gid)
    assert copied.st_mtime_ns == before.st_mtime_ns
    # The file itself is only read.
    assert os.stat(path).st_mode == before.st_mode
    with open(path, "rb") as handle:
        assert handle.read() == SECRET


def test_backup_of_a_large_file_is_whole(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = _file(tmp_path, data=data, mode=0o600)
    copy = make_backup(path)
    with open(copy, "rb") as handle:
        assert handle.read() == data


def test_the_name_format_is_backup_locals():
    when = time.mktime((2026, 1, 31, 10, 0, 5, 0, 0, -1))
    assert backup_name("/etc/docker/daemon.json", when, 4242) == (
        "/etc/docker/daemon.json.4242.2026-01-31@10:00:05~"
    )


def test_a_taken_name_is_named_and_not_written_through(tmp_path):
    path = _file(tmp_path)
    now = time.time()
    taken = backup_name(path, now)
    # Someone placed a link where the copy goes, aiming at a file of their choosing.
    victim = tmp_path / "elsewhere"
    victim.write_bytes(b"untouched\n")
    os.symlink(str(victim), taken)

    with pytest.raises(BackupError) as raised:
        make_backup(path, now)

    message = str(raised.value)
    assert "cannot back up %s: %s already exists" % (path, taken) in message
    assert "move it away" in message
    assert victim.read_bytes() == b"untouched\n"
    assert os.readlink(taken) == str(victim)
    assert sorted(os.listdir(str(tmp_path))) == sorted(
        ["daemon.json", "elsewhere", os.path.basename(taken)]
    )


def test_a_link_or_a_fifo_in_place_of_the_file_is_refused(tmp_path):
    real = _file(tmp_path)
    link = str(tmp_path / "link.json")
    os.symlink(real, link)
    with pytest.raises(BackupError, match="cannot back up %s: it is a symbolic link" % link):
        make_backup(link)

    fifo = str(tmp_path / "fifo.json")
    os.mkfifo(fifo)
    with pytest.raises(BackupError, match="cannot back up %s: it is not a regular file" % fifo):
        make_backup(fifo)
    assert sorted(os.listdir(str(tmp_path))) == ["daemon.json", "fifo.json", "link.json"]


def test_a_missing_file_is_named(tmp_path):
    path = str(tmp_path / "daemon.json")
    with pytest.raises(BackupError, match="cannot back up %s: cannot read it: No such file" % path):
        make_backup(path)
    assert os.listdir(str(tmp_path)) == []


_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.dockerhost.storage.plugins.module_utils._atomic_file import make_backup
make_backup(sys.argv[2])
"""


def test_a_backup_killed_while_it_is_written_is_readable_by_the_owner_only(tmp_path):
    # Large enough that the copy takes a while: the kill lands while it is being written.
    path = _file(tmp_path, data=SECRET + b" " * (64 * 1024 * 1024), mode=0o600)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, collections_root(), path],
        env=dict(os.environ, LANG="C"),
    )
    seen = {}
    prefix = "daemon.json.%d." % child.pid
    deadline = time.monotonic() + 60
    try:
        while not seen and time.monotonic() < deadline and child.poll() is None:
            for name in os.listdir(str(tmp_path)):
                if name.startswith(prefix):
                    # The mode at first sight, before the kill.
                    seen[name] = stat.S_IMODE(os.lstat(str(tmp_path / name)).st_mode)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the copy finished before it was killed"
    assert seen, "no backup appeared before the kill"
    name = next(iter(seen))
    left = os.lstat(str(tmp_path / name))
    assert oct(seen[name]) == oct(0o600)
    assert oct(stat.S_IMODE(left.st_mode)) == oct(0o600)
    assert os.path.getsize(path) == len(SECRET) + 64 * 1024 * 1024
