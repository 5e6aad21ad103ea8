# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Record which directories of a tree change while a copy of it is made, so that the next
pass of the copy visits those and not the whole tree.

fanotify watches the whole filesystem that holds the tree (FAN_MARK_FILESYSTEM: every mount
of it, every mount namespace, and the upper layers that overlay mounts write through to),
and reports each change with the directory it happened in and the entry's name
(FAN_REPORT_DIR_FID | FAN_REPORT_NAME, Linux 5.9 and later). Recorded: writes (FAN_MODIFY,
and FAN_CLOSE_WRITE, which is how a write through a shared memory map shows up once the
writer is gone), metadata changes (FAN_ATTRIB: owner, mode, times, extended attributes, link
count), and entries created, removed or renamed, directories included (FAN_ONDIR).

A directory is named by a file handle; ``take()`` turns the handles into paths by opening
each one (open_by_handle_at) and reading where the kernel finds it now, which for a
directory is always known. What cannot be attributed to a directory of the tree with
certainty makes ``take()`` return None, and the caller must walk the whole tree: the event
queue overflowed, an event named no directory, or a handle could not be opened for another
reason than the directory being gone (a removed directory shows up as a change in its
parent). More directories than changed may be named (the same filesystem outside the tree
resolves to paths outside it, which are left out); never fewer.

Needs CAP_SYS_ADMIN (fanotify on a filesystem) and CAP_DAC_READ_SEARCH (open_by_handle_at):
root. ``WatchUnavailable`` says why a watch could not start (an older kernel, a container
without those capabilities, a C library without the calls).

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import threading

FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_CLASS_NOTIF = 0x0
FAN_UNLIMITED_QUEUE = 0x10
FAN_REPORT_DIR_FID = 0x400
FAN_REPORT_NAME = 0x800
FAN_MARK_ADD = 0x1
FAN_MARK_FILESYSTEM = 0x100

FAN_MODIFY = 0x2
FAN_ATTRIB = 0x4
FAN_CLOSE_WRITE = 0x8
FAN_MOVED_FROM = 0x40
FAN_MOVED_TO = 0x80
FAN_CREATE = 0x100
FAN_DELETE = 0x200
FAN_DELETE_SELF = 0x400
FAN_MOVE_SELF = 0x800
FAN_Q_OVERFLOW = 0x4000
FAN_ONDIR = 0x40000000

WATCHED = (
    FAN_MODIFY
    | FAN_ATTRIB
    | FAN_CLOSE_WRITE
    | FAN_MOVED_FROM
    | FAN_MOVED_TO
    | FAN_CREATE
    | FAN_DELETE
    | FAN_DELETE_SELF
    | FAN_MOVE_SELF
    | FAN_ONDIR
)

# Events come through a queue without a limit (read as they come), and name their directory.
_INIT_FLAGS = (
    FAN_CLASS_NOTIF
    | FAN_CLOEXEC
    | FAN_NONBLOCK
    | FAN_UNLIMITED_QUEUE
    | FAN_REPORT_DIR_FID
    | FAN_REPORT_NAME
)
_MARK_FLAGS = FAN_MARK_ADD | FAN_MARK_FILESYSTEM

# Information record types (linux/fanotify.h).
INFO_DFID_NAME = 2
INFO_DFID = 3
INFO_PIDFD = 4

_METADATA = struct.Struct("=IBBHQii")  # event_len, vers, reserved, metadata_len, mask, fd, pid
_INFO_HEADER = struct.Struct("=BBH")  # info_type, pad, len
_HANDLE_HEADER = struct.Struct("=Ii")  # handle_bytes, handle_type
_FSID_BYTES = 8
FANOTIFY_METADATA_VERSION = 3
_AT_FDCWD = -100
_READ_SIZE = 1 << 16


class WatchUnavailable(Exception):
    """fanotify cannot watch this filesystem here; the message says why."""


def parse_events(buffer, changes):
    """Add to ``changes`` (directory handle -> set of entry names) what a buffer of fanotify
    events names: the directory of each event (bytes: the kernel's ``struct file_handle``,
    header included) and the entry's name (none for an event on the directory itself). Returns
    False when an event cannot be attributed to a directory (an overflow, or no directory
    record), True otherwise."""
    complete = True
    offset = 0
    while offset + _METADATA.size <= len(buffer):
        event_len, version, _reserved, metadata_len, mask, _fd, _pid = _METADATA.unpack_from(
            buffer, offset
        )
        if event_len < _METADATA.size or version != FANOTIFY_METADATA_VERSION:
            return False
        end = offset + event_len
        named = False
        info = offset + metadata_len
        while info + _INFO_HEADER.size <= end:
            info_type, _pad, length = _INFO_HEADER.unpack_from(buffer, info)
            if length < _INFO_HEADER.size:
                return False
            if info_type in (INFO_DFID_NAME, INFO_DFID):
                start = info + _INFO_HEADER.size + _FSID_BYTES
                handle_bytes, _handle_type = _HANDLE_HEADER.unpack_from(buffer, start)
                name_at = start + _HANDLE_HEADER.size + handle_bytes
                names = changes.setdefault(bytes(buffer[start:name_at]), set())
                if info_type == INFO_DFID_NAME:
                    name = bytes(buffer[name_at : info + length]).split(b"\0", 1)[0]
                    if name != b".":
                        names.add(os.fsdecode(name))
                named = True
            info += length
        if mask & FAN_Q_OVERFLOW or not named:
            complete = False
        offset = end
    return complete


def _libc():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        init, mark, by_handle = libc.fanotify_init, libc.fanotify_mark, libc.open_by_handle_at
    except (OSError, AttributeError) as exc:
        raise WatchUnavailable("the C library has no fanotify calls (%s)" % exc) from None
    init.argtypes = [ctypes.c_uint, ctypes.c_uint]
    mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
    by_handle.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    return init, mark, by_handle


class ChangeWatch:
    """Watch the filesystem of ``root`` from now on; ``take()`` names what changed below
    ``root`` since the previous ``take()`` (or the start). ``close()`` when done."""

    def __init__(self, root):
        self.root = os.path.realpath(root)
        init, mark, self._open_by_handle = _libc()
        fd = init(_INIT_FLAGS, os.O_RDONLY | os.O_CLOEXEC)
        if fd < 0:
            raise WatchUnavailable("fanotify_init: %s" % os.strerror(ctypes.get_errno()))
        self._fd = fd
        try:
            status = mark(fd, _MARK_FLAGS, WATCHED, _AT_FDCWD, os.fsencode(self.root))
            if status != 0:
                raise WatchUnavailable(
                    "fanotify_mark on %s: %s" % (self.root, os.strerror(ctypes.get_errno()))
                )
        except BaseException:
            os.close(fd)
            raise
        self._lock = threading.Lock()
        self._changes = {}  # directory handle -> names of the entries changed in it
        self._complete = True
        self._stop_read, self._stop_write = os.pipe()
        self._reader = threading.Thread(target=self._read_until_closed, daemon=True)
        self._reader.start()

    def _drain(self):
        """Read every queued event (the caller holds the lock)."""
        while True:
            try:
                buffer = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                self._complete = False
                return
            if not buffer:
                return
            if not parse_events(buffer, self._changes):
                self._complete = False

    def _read_until_closed(self):
        # Reading as events come keeps the kernel's queue short (it has no limit).
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._stop_read, select.POLLIN)
        while True:
            ready = {fd for fd, _event in poller.poll()}
            if self._stop_read in ready:
                return
            with self._lock:
                self._drain()

    def take(self):
        """What changed below ``root`` since the previous call: ``{directory: names}``, the
        directory relative to ``root`` ("" for ``root``) and the names of the entries in it
        that were written, changed, made, removed or renamed (empty when only the directory
        itself changed); None when that cannot be told for certain (walk everything). Every
        change made before the call returns is included."""
        with self._lock:
            self._drain()
            changes, complete = self._changes, self._complete
            self._changes, self._complete = {}, True
        if not complete:
            return None
        changed = {}
        # Opened only here: a descriptor kept open would keep the filesystem from unmounting
        # (the mark itself does not).
        mount_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for handle, names in changes.items():
                path = self._resolve(mount_fd, handle)
                if path is False:
                    return None
                if path is None:
                    continue
                relative = os.path.relpath(path, self.root)
                if relative == ".":
                    relative = ""
                elif relative == os.pardir or relative.startswith(os.pardir + os.sep):
                    continue
                changed.setdefault(relative, set()).update(names)
        finally:
            os.close(mount_fd)
        return changed

    def _resolve(self, mount_fd, handle):
        """Where the directory of ``handle`` is now; None when it is gone, False when that
        cannot be told."""
        fd = self._open_by_handle(mount_fd, handle, os.O_PATH | os.O_CLOEXEC)
        if fd < 0:
            return None if ctypes.get_errno() in (errno.ESTALE, errno.ENOENT) else False
        try:
            if os.fstat(fd).st_nlink == 0:
                return None  # removed: its parent recorded the removal
            path = os.readlink("/proc/self/fd/%d" % fd)
        except OSError:
            return False
        finally:
            os.close(fd)
        return path if path.startswith("/") else False

    def close(self):
        if self._fd is None:
            return
        os.write(self._stop_write, b"x")
        self._reader.join()
        for fd in (self._fd, self._stop_read, self._stop_write):
            os.close(fd)
        self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
