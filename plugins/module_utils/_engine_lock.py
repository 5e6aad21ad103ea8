# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run at a time of whatever stops the engine or writes daemon.json on a host.

``data_root``, ``daemon_config`` and ``image_archive`` hold an exclusive ``flock`` on
``/run/dockerhost-storage/engine.lock`` for their whole run. The kernel releases it when its
holder exits, however it exits (a ``kill -9``, a controller whose connection dropped while the
module went on), so a lock left by a dead process blocks nobody. A second run waits a bounded
time, then fails naming the holder's process id and what it is doing.

The directory is root's alone (0700): a file anyone else could create or replace there would
let them hold the lock, or point it elsewhere. Both are opened without following symlinks and
checked before use.

This file touches the live system. Private to the dockerhost.storage collection: the API may
change without notice.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import time

LOCK_DIRECTORY = "/run/dockerhost-storage"
LOCK_NAME = "engine.lock"
POLL_SECONDS = 0.1


class EngineLockError(Exception):
    """The lock could not be taken; the message names the holder or the problem."""


def _check_owned_by_us(st, path, kind):
    """Refuse a lock directory or file that someone else owns or may write."""
    if st.st_uid != os.geteuid():
        raise EngineLockError(
            "the lock %s %s belongs to uid %d, not to uid %d; remove it (nothing but this "
            "collection's modules should write there)" % (kind, path, st.st_uid, os.geteuid())
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise EngineLockError(
            "the lock %s %s is writable by group or others (mode %04o); remove it"
            % (kind, path, stat.S_IMODE(st.st_mode))
        )


def _open_directory(directory):
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise EngineLockError(
            "cannot create the lock directory %s: %s" % (directory, exc.strerror or exc)
        ) from None
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise EngineLockError(
            "cannot open the lock directory %s: %s%s"
            % (
                directory,
                exc.strerror or exc,
                " (it is not a directory: remove it)"
                if exc.errno in (errno.ELOOP, errno.ENOTDIR)
                else "",
            )
        ) from None
    try:
        _check_owned_by_us(os.fstat(fd), directory, "directory")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_lock_file(directory):
    path = os.path.join(directory, LOCK_NAME)
    directory_fd = _open_directory(directory)
    try:
        fd = os.open(
            LOCK_NAME,
            os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=directory_fd,
        )
    except OSError as exc:
        raise EngineLockError(
            "cannot open the lock file %s: %s" % (path, exc.strerror or exc)
        ) from None
    finally:
        os.close(directory_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise EngineLockError("the lock file %s is not a plain file; remove it" % path)
        _check_owned_by_us(st, path, "file")
    except BaseException:
        os.close(fd)
        raise
    return fd, path


def parse_proc_locks(text):
    """``{(major, minor, inode): pid}`` of the ``FLOCK`` write locks in /proc/locks text."""
    holders = {}
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0].endswith(":") and fields[1:2] == ["->"]:
            continue  # a waiter, listed under the lock it waits for
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[3] != "WRITE":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            holders[(int(major, 16), int(minor, 16), int(inode))] = int(fields[4])
        except ValueError:
            continue
    return holders


def _kernel_holder(st):
    """The process id the kernel lists as holding the lock on the file ``st`` describes."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            holders = parse_proc_locks(handle.read())
    except OSError:
        return None
    return holders.get((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))


def describe_holder(record, kernel_pid):
    """A sentence naming who holds the lock, from its record and the kernel's view."""
    pid = record.get("pid") if isinstance(record, dict) else None
    if kernel_pid and pid != kernel_pid:
        # The holder has not written its record yet, or the record is an older holder's.
        return "process %d" % kernel_pid
    if not isinstance(pid, int):
        return "another process"
    text = "process %d" % pid
    if record.get("purpose"):
        text += " (%s)" % record["purpose"]
    if record.get("since"):
        text += ", since %s" % record["since"]
    return text


class EngineLock:
    """The host's engine lock, held from ``acquire()`` until the process exits or
    ``release()``. ``waited`` is how long ``acquire()`` waited, in seconds."""

    def __init__(self, purpose, timeout, directory=LOCK_DIRECTORY):
        self.purpose = purpose
        self.timeout = timeout
        self.directory = directory
        self.path = os.path.join(directory, LOCK_NAME)
        self.waited = 0.0
        self._fd = None

    def acquire(self):
        """Take the lock, waiting at most ``timeout`` seconds; raise EngineLockError naming
        the holder when it is still held then."""
        fd, self.path = _open_lock_file(self.directory)
        started = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    raise EngineLockError(
                        "cannot lock %s: %s" % (self.path, exc.strerror or exc)
                    ) from None
            if time.monotonic() - started >= self.timeout:
                holder = describe_holder(_read_record(fd), _kernel_holder(os.fstat(fd)))
                os.close(fd)
                raise EngineLockError(
                    "another run is changing this host's Docker engine: %s holds %s. Waited %d "
                    "seconds (lock_timeout); run again once it has finished, or stop that "
                    "process if it is stuck (a process that dies releases the lock)"
                    % (holder, self.path, self.timeout)
                )
            time.sleep(POLL_SECONDS)
        self.waited = round(time.monotonic() - started, 3)
        self._fd = fd
        record = {
            "pid": os.getpid(),
            "purpose": self.purpose,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record, sort_keys=True) + "\n").encode("utf-8"), 0)
        return self

    def release(self):
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


def _read_record(fd):
    try:
        data = os.pread(fd, 4096, 0)
        return json.loads(data.decode("utf-8")) if data.strip() else {}
    except (OSError, ValueError):
        return {}


def hold_engine_lock(module, purpose):
    """Take the engine lock for the rest of the module's run (``lock_timeout`` from its
    parameters); fail the task with the holder's name when it cannot be had."""
    lock = EngineLock(purpose, module.params["lock_timeout"])
    try:
        return lock.acquire()
    except EngineLockError as exc:
        module.fail_json(msg=str(exc), changed=False)
