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
import hashlib
import json
import os
import signal
import stat
import time

from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError

LOCK_DIRECTORY = "/run/dockerhost-storage"
LOCK_NAME = "engine.lock"
POLL_SECONDS = 0.1


class EngineLockError(StorageError):
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


def _open_directory(directory, create=True):
    try:
        if create:
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


def _open_lock_file(directory, name=LOCK_NAME, create=True):
    """``(fd, path)`` of a lock file in ``directory``, both checked to be root's alone.
    Without ``create``, a missing directory or file raises FileNotFoundError."""
    path = os.path.join(directory, name)
    if not create and not os.path.isdir(directory):
        raise FileNotFoundError(directory)
    directory_fd = _open_directory(directory, create)
    try:
        fd = os.open(
            name,
            os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if create else 0),
            0o600,
            dir_fd=directory_fd,
        )
    except FileNotFoundError:
        if not create:
            raise
        raise EngineLockError("cannot open the lock file %s: it vanished" % path) from None
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
    ``release()``. ``waited`` is how long ``acquire()`` waited, in seconds.

    ``token``: a run that holds a lease (``hold_lease``, the ``engine_lock`` module) under the
    same token is this run's own play: the lock is then taken as held already, and
    ``covered_by`` names the lease's process."""

    def __init__(self, purpose, timeout, directory=LOCK_DIRECTORY, token=None):
        self.purpose = purpose
        self.timeout = timeout
        self.directory = directory
        self.token = token
        self.path = os.path.join(directory, LOCK_NAME)
        self.waited = 0.0
        self.covered_by = None
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
            lease = self._own_lease(fd)
            if lease is not None and self._join_lease(lease):
                os.close(fd)
                self.covered_by = lease
                self.waited = round(time.monotonic() - started, 3)
                return self
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
        if self.token:
            record["token"] = self.token
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record, sort_keys=True) + "\n").encode("utf-8"), 0)
        return self

    def _join_lease(self, lease):
        """Keep the lease ``lease`` from ending while this process runs: a shared flock on the
        lease's own file, which the lease takes exclusively before it ends on its own. True
        once held with the lease still alive; False when the lease ended meanwhile."""
        try:
            fd = _open_lock_file(self.directory, _lease_file_name(self.token))[0]
        except EngineLockError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False  # the lease is ending: wait for the lock as anyone would
        if lease_holder(self.token, self.directory) != lease:
            os.close(fd)
            return False
        self._fd = fd  # held until this process ends (or release())
        return True

    def _own_lease(self, fd):
        """The process id of the lease that holds the lock under this run's token, or None.
        Believed only when the kernel names the same process as the holder."""
        if not self.token:
            return None
        record = _read_record(fd)
        holder = _kernel_holder(os.fstat(fd))
        if record.get("token") == self.token and holder is not None and record.get("pid") == holder:
            return holder
        return None

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


def current_holder(directory=LOCK_DIRECTORY):
    """``(pid, record)`` of the process holding the lock now, from the kernel's lock table
    and the lock file's record, or ``(None, record)`` when nobody holds it."""
    try:
        fd, _path = _open_lock_file(directory, create=False)
    except (EngineLockError, FileNotFoundError):
        return None, {}
    try:
        return _kernel_holder(os.fstat(fd)), _read_record(fd)
    finally:
        os.close(fd)


def hold_engine_lock(params, purpose):
    """Take the engine lock for the rest of the module's run (``lock_timeout`` from its
    options ``params``; a lease under ``lock_token`` counts as this run's). Raises
    EngineLockError naming the holder when it cannot be had (the task changed nothing)."""
    lock = EngineLock(purpose, params["lock_timeout"], token=params.get("lock_token"))
    try:
        return lock.acquire()
    except EngineLockError as exc:
        raise EngineLockError(str(exc), {"changed": False}) from None


def _lease_file_name(token):
    """The file the tasks of a lease hold shared, named for (a hash of) its token."""
    return (
        "lease-%s.lock" % hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    )


def _remove_lease_file(token, directory):
    try:
        os.unlink(os.path.join(directory, _lease_file_name(token)))
    except OSError:
        pass


def lease_holder(token, directory=LOCK_DIRECTORY):
    """The process id of the live lease holding the lock under ``token``, or None."""
    pid, record = current_holder(directory)
    if pid is not None and record.get("token") == token and record.get("pid") == pid:
        return pid
    return None


def hold_lease(token, purpose, lease_seconds, timeout, directory=LOCK_DIRECTORY):
    """Make a process of its own hold the lock under ``token`` for at most ``lease_seconds``
    (until ``release_lease``, or its end): modules of the same play pass the token and run,
    every other run waits. Returns ``(pid, started)``; ``started`` is False when a lease under
    this token holds it already. Raises EngineLockError naming the holder when the lock stays
    taken for ``timeout`` seconds."""
    held = lease_holder(token, directory)
    if held is not None:
        return held, False
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # the lease: detached, its own session, no descriptor of the module's
        status = 2
        try:
            os.close(read_fd)
            os.setsid()
            os.chdir("/")
            devnull = os.open(os.devnull, os.O_RDWR)
            for standard in (0, 1, 2):
                os.dup2(devnull, standard)
            os.closerange(3, write_fd)
            os.closerange(write_fd + 1, 65536)
            try:
                EngineLock(purpose, timeout, directory, token=token).acquire()
            except EngineLockError as exc:
                os.write(write_fd, ("error %s" % exc).encode("utf-8"))
                status = 1
            else:
                lease_fd = _open_lock_file(directory, _lease_file_name(token))[0]
                os.write(write_fd, b"held")
                os.close(write_fd)
                # The kernel drops the lock when this process ends: SIGTERM from
                # release_lease, a kill, or the end of the lease, which waits for the tasks
                # of the play that still run under it (their shared locks on the lease file).
                time.sleep(lease_seconds)
                while True:
                    try:
                        fcntl.flock(lease_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except OSError:
                        time.sleep(POLL_SECONDS * 10)
                _remove_lease_file(token, directory)
                status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    chunks = []
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    answer = b"".join(chunks).decode("utf-8", "replace")
    if answer == "held":
        return child, True
    os.waitpid(child, 0)
    raise EngineLockError(
        answer[len("error ") :] if answer.startswith("error ") else "the lease process failed"
    )


def release_lease(token, timeout=10, directory=LOCK_DIRECTORY):
    """End the lease that holds the lock under ``token``; returns its process id, or None
    when no lease holds it under that token (released already, expired, or never taken)."""
    pid = lease_holder(token, directory)
    if pid is None:
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid
    deadline = time.monotonic() + timeout
    _remove_lease_file(token, directory)
    while current_holder(directory)[0] == pid:
        if time.monotonic() >= deadline:
            raise EngineLockError(
                "the lease process %d did not end within %d seconds of SIGTERM" % (pid, timeout)
            )
        time.sleep(POLL_SECONDS)
    return pid
