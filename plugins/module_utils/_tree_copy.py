# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copy a Docker data-root to another filesystem with everything overlay2 depends on, and
copy again what changed since.

Kept: file types (whiteouts are character devices 0/0), every extended attribute (trusted.*
with the overlay opaque/redirect/origin flags, security.*, user.*, and the ACLs stored as
system.posix_acl_*), hard links, sparse extents, numeric owners, modes and nanosecond
timestamps, symlink targets as they are (relative ones stay relative). Mount points below the
source (merged directories of running containers, shm) become empty directories: their
content belongs to another filesystem.

Nothing below a mount point on the target is ever written or removed: a mount there is someone
else's (an engine started on the target mounts its containers' root filesystems in it), so a
pass that meets one stops with CopyError before it changes anything below it. Every target
directory's device is compared with the target's, and removals never cross a device.

This file touches the live system. docs/relocation.md says why this copier and not rsync.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import collections
import errno
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.dockerhost.storage.plugins.module_utils import _mountinfo
from ansible_collections.dockerhost.storage.plugins.module_utils._path_users import mounts_inside

# What the second pass compares to decide an entry changed. ctime moves on every change to
# content, owner, mode, link count and xattrs, which mtime alone would miss.
Snapshot = collections.namedtuple("Snapshot", ["ino", "mode", "ctime_ns", "size"])

# The racy-clean rule (git's, for its index): a snapshot proves nothing about a write made in
# the same timestamp tick as the copy, because the write may leave ctime as it was. Kernels
# before 6.13 stamp ctime from a clock that moves once a tick, and ext4 with 128-byte inodes
# keeps whole seconds. So an entry whose ctime or mtime is not older than the pass's start minus
# this window is copied again by the next pass (and, being copied, hashed by the check): two
# seconds covers one-second timestamps and any tick, at the cost of copying once more what
# changed in the two seconds before a pass.
RACY_WINDOW_NS = 2 * 10**9
# Stored for a racily clean entry: equal to no Snapshot, so the next pass copies it again.
RACY = Snapshot(-1, -1, -1, -1)

_COPY_CHUNK = 1 << 30
PROGRESS_EVERY = 100
COPY_WORKERS = 8
MAX_IN_FLIGHT = 512


class CopyError(Exception):
    """A copy step failed; the message names the path and the reason."""


def _fail(action, path, exc):
    raise CopyError(
        "%s %s: %s" % (action, path, os.strerror(exc.errno) if exc.errno else exc)
    ) from None


# xfs shows the POSIX ACLs a second time, in its own on-disk form, as these trusted.*
# attributes; they follow system.posix_acl_* by themselves and mean nothing elsewhere.
DERIVED_XATTRS = frozenset(("trusted.SGI_ACL_FILE", "trusted.SGI_ACL_DEFAULT"))


def list_xattrs(path):
    """``{name: value}`` of every extended attribute of ``path`` (not following symlinks),
    except the ones a filesystem derives from others (DERIVED_XATTRS)."""
    try:
        names = [
            name for name in os.listxattr(path, follow_symlinks=False) if name not in DERIVED_XATTRS
        ]
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    values = {}
    for name in names:
        try:
            values[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno != errno.ENODATA:  # removed between list and get
                raise
    return values


def _apply_xattrs(path, wanted, present=None):
    present = list_xattrs(path) if present is None else present
    for name in present:
        if name not in wanted:
            os.removexattr(path, name, follow_symlinks=False)
    for name, value in wanted.items():
        if present.get(name) != value:
            os.setxattr(path, name, value, follow_symlinks=False)


def _copy_data(source_fd, target_fd, size):
    """Copy ``size`` bytes keeping holes: only the data extents are copied (SEEK_DATA/HOLE)."""
    offset = 0
    while offset < size:
        try:
            data = os.lseek(source_fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole is left
                break
            raise
        hole = os.lseek(source_fd, data, os.SEEK_HOLE)
        if not _copy_range(source_fd, target_fd, data, hole):
            return
        offset = hole
    os.ftruncate(target_fd, size)


def _open_new(target):
    """A new file at ``target`` (whatever was there is removed first), open for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        return os.open(target, flags, 0o600)
    except FileExistsError:
        remove_path(target, os.lstat(os.path.dirname(target)).st_dev)
        return os.open(target, flags, 0o600)


def _copy_regular_file(source, target, st):
    """Copy a regular file and its attributes through two open descriptors: fewer path
    lookups than copying by name, which counts with a hundred thousand small files."""
    source_fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        xattrs = _fd_xattrs(source_fd)
        target_fd = _open_new(target)
        try:
            if st.st_blocks * 512 < st.st_size:
                _copy_data(source_fd, target_fd, st.st_size)  # may have holes: keep them
            else:
                _copy_range(source_fd, target_fd, 0, st.st_size)
            os.fchown(target_fd, st.st_uid, st.st_gid)
            os.fchmod(target_fd, stat.S_IMODE(st.st_mode))  # after chown, which clears set-uid
            for name, value in xattrs.items():
                os.setxattr(target_fd, name, value)
            os.utime(target_fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(target_fd)
    finally:
        os.close(source_fd)
    return True


def _fd_xattrs(fd):
    try:
        names = [name for name in os.listxattr(fd) if name not in DERIVED_XATTRS]
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    values = {}
    for name in names:
        try:
            values[name] = os.getxattr(fd, name)
        except OSError as exc:
            if exc.errno != errno.ENODATA:
                raise
    return values


def _copy_range(source_fd, target_fd, position, end):
    """Copy bytes ``position`` to ``end``; False when the file shrank meanwhile."""
    while position < end:
        count = min(end - position, _COPY_CHUNK)
        try:
            copied = os.copy_file_range(source_fd, target_fd, count, position, position)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            copied = _copy_with_read(source_fd, target_fd, count, position)
        if copied == 0:  # the file shrank while copying; the next pass takes it again
            return False
        position += copied
    return True


def _copy_with_read(source_fd, target_fd, count, position):
    chunk = os.pread(source_fd, min(count, 1 << 20), position)
    if chunk:
        os.pwrite(target_fd, chunk, position)
    return len(chunk)


def _copy_metadata(target, st, xattrs, is_link=False):
    os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
    if not is_link:
        # After chown, which clears set-uid and set-gid bits.
        os.chmod(target, stat.S_IMODE(st.st_mode))
    _apply_xattrs(target, xattrs, None)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_entry(source, target, st):
    """Create ``target`` as a copy of the non-directory ``source`` whose lstat is ``st``.

    An existing ``target`` is replaced. Directories are made by ``TreeCopy`` itself. Returns
    False, leaving no target, when ``source`` vanished meanwhile (a tree in use: the next pass
    sees what became of it).
    """
    mode = st.st_mode
    try:
        return _copy_entry(source, target, st, mode)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR) and exc.filename == source:
            remove_path(target, os.lstat(os.path.dirname(target)).st_dev)
            return False
        _fail("cannot copy", source, exc)


def _copy_entry(source, target, st, mode):
    if stat.S_ISREG(mode):
        return _copy_regular_file(source, target, st)
    remove_path(target, os.lstat(os.path.dirname(target)).st_dev)
    if stat.S_ISLNK(mode):
        os.symlink(os.readlink(source), target)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        os.mknod(target, stat.S_IFMT(mode) | 0o600, st.st_rdev)
    else:
        raise CopyError("%s has a file type this copier does not know (%o)" % (source, mode))
    _copy_metadata(target, st, list_xattrs(source), is_link=stat.S_ISLNK(mode))
    return True


class TreeCopy:
    """One copy of ``source`` to ``target``; ``run()`` again copies only what changed.

    Remembers a Snapshot per copied path (bounded by the tree's entry count: for a data-root of
    a million entries, around 150 MB). Statistics of the last run are in ``stats``.
    """

    def __init__(self, source, target, trust_existing=False):
        """``trust_existing``: on the first run, take a target entry of the same type, size,
        mtime and owner as already copied (resuming an interrupted copy). Whoever sets it must
        verify every file's content afterwards."""
        self.source = os.path.normpath(source)
        self.target = os.path.normpath(target)
        self.trust_existing = trust_existing
        self.snapshots = {}
        self.skipped_mounts = []
        self.changed = set()  # entries copied or linked by the last run
        self.changed_directories = set()  # directories whose content or attributes it changed
        self.stats = {}
        self._pool = None
        self._pending = collections.deque()
        self._followers = []
        self._target_device = None
        self._racy_from_ns = 0
        # Entries the first run found on the target already copied (``trust_existing``).
        self.kept_existing = 0
        # First members of hard-link groups with links outside the tree (the last run's).
        self.linked_outside = []
        self._link_members = {}
        # Called after every PROGRESS_EVERY entries (the relocation's fault-injection points).
        self.on_progress = None

    def run(self):
        """Copy every entry that is new or changed since the previous run; remove from the
        target what disappeared from the source. Returns ``stats``."""
        stats = {"entries": 0, "copied": 0, "linked": 0, "removed": 0, "bytes": 0, "racy": 0}
        self._racy_from_ns = time.time_ns() - RACY_WINDOW_NS
        self.changed = set()
        self.changed_directories = set()
        try:
            root_st = os.lstat(self.source)
        except OSError as exc:
            _fail("cannot read", self.source, exc)
        if not stat.S_ISDIR(root_st.st_mode):
            raise CopyError("%s is not a directory" % self.source)
        device = root_st.st_dev
        self._target_device = self._check_target()
        seen = set()
        links = {}  # (dev, ino) -> relative path of its first copy, for st_nlink > 1
        self._followers = []  # hard links to make once every first copy is complete
        self._pending = collections.deque()
        self._link_members = {}  # (dev, ino) -> (st_nlink, members seen in the tree)
        skipped = []
        directories = []  # (relative path, lstat, xattrs) to finish after their content
        stack = [""]
        # Files are copied by a few threads: the system calls release the GIL, and reading
        # many small files with a queue of requests is faster than one at a time on most disks.
        with ThreadPoolExecutor(COPY_WORKERS) as pool:
            self._pool = pool
            try:
                self._walk(stack, device, seen, links, skipped, directories, stats)
                self._wait_for_copies(0)
            finally:
                self._pool = None
        for _relative, target_path, first_target in self._followers:
            try:
                if os.path.lexists(target_path):
                    os.unlink(target_path)
                os.link(first_target, target_path)
            except OSError as exc:
                _fail("cannot hard-link", target_path, exc)
        self._finish_directories(directories)
        # Files with links outside the tree: the copy holds them as files of their own.
        self.linked_outside = sorted(
            links[key] for key, (nlink, members) in self._link_members.items() if members < nlink
        )
        for relative in [path for path in self.snapshots if path not in seen]:
            del self.snapshots[relative]
        self.skipped_mounts = sorted(skipped)
        self.trust_existing = False
        self.stats = stats
        return stats

    def _check_target(self):
        """The target's device, once nothing is found mounted inside the target."""
        try:
            try:
                target_st = os.lstat(self.target)
            except FileNotFoundError:
                os.mkdir(self.target, 0o700)
                target_st = os.lstat(self.target)
        except OSError as exc:
            _fail("cannot create", self.target, exc)
        if not stat.S_ISDIR(target_st.st_mode):
            raise CopyError("%s is not a directory" % self.target)
        mounted = mounts_inside(self.target, _mountinfo.read_mountinfo())
        if mounted:
            raise CopyError(
                "not copying into %s: %s mounted inside it. Something else uses the target (an "
                "engine started on it mounts its containers there): stop it, or unmount, first"
                % (self.target, ", ".join(mounted) + (" is" if len(mounted) == 1 else " are"))
            )
        return target_st.st_dev

    def _check_target_directory(self, target_dir):
        """Refuse to work in a target directory on another device: a mount point that appeared
        while the pass ran."""
        try:
            st = os.lstat(target_dir)
        except OSError as exc:
            _fail("cannot read", target_dir, exc)
        if st.st_dev != self._target_device:
            raise CopyError(
                "not copying into %s: another filesystem is mounted there, inside the target %s "
                "(an engine started on the target mounts its containers there); nothing below it "
                "was changed: stop whatever mounted it, then run again" % (target_dir, self.target)
            )

    def forget(self, paths):
        """Make the next run copy ``paths`` (relative) again, whatever their snapshots say."""
        for relative in paths:
            self.snapshots.pop(relative, None)

    def _wait_for_copies(self, keep):
        """Wait until at most ``keep`` copies are in flight; raise the first failure."""
        while len(self._pending) > keep:
            self._pending.popleft().result()

    def _walk(self, stack, device, seen, links, skipped, directories, stats):
        while stack:
            relative = stack.pop()
            source_dir = os.path.join(self.source, relative) if relative else self.source
            target_dir = os.path.join(self.target, relative) if relative else self.target
            try:
                st = os.lstat(source_dir)
                entries = list(os.scandir(source_dir))
            except FileNotFoundError:
                continue  # removed since its parent was listed; the next pass notices
            except OSError as exc:
                _fail("cannot list", source_dir, exc)
            created = self._ensure_directory(target_dir, self._target_device)
            self._check_target_directory(target_dir)
            before = stats["copied"] + stats["linked"] + stats["removed"]
            present = self._target_names(target_dir)
            for entry in entries:
                child = os.path.join(relative, entry.name) if relative else entry.name
                try:
                    child_st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed since the listing; the next run notices
                present.discard(entry.name)
                if stat.S_ISDIR(child_st.st_mode):
                    if child_st.st_dev != device:
                        # A mount point: an empty directory in the copy, as dockerd made it.
                        skipped.append(child)
                        seen.add(child)
                        if self._ensure_directory(
                            os.path.join(self.target, child), self._target_device
                        ):
                            stats["copied"] += 1
                        continue
                    stack.append(child)
                    continue
                seen.add(child)
                stats["entries"] += 1
                self._copy_file(child, entry.path, child_st, links, stats)
                if self.on_progress is not None and stats["entries"] % PROGRESS_EVERY == 0:
                    self.on_progress()
            for gone in present:
                remove_path(os.path.join(target_dir, gone), self._target_device)
                stats["removed"] += 1
            dirty = created or before != stats["copied"] + stats["linked"] + stats["removed"]
            directories.append((relative, st, dirty))
            seen.add(relative)
            stats["entries"] += 1

    def _finish_directories(self, directories):
        # Directory owners, modes, xattrs and times last, deepest first: creating entries in a
        # directory changes its times. Unchanged directories with unchanged content are skipped.
        for relative, st, dirty in reversed(directories):
            snapshot = self._snapshot(st)
            if not dirty and self._unchanged(relative, snapshot):
                continue
            source_dir = os.path.join(self.source, relative) if relative else self.source
            target_dir = os.path.join(self.target, relative) if relative else self.target
            try:
                _copy_metadata(target_dir, st, list_xattrs(source_dir))
            except FileNotFoundError:
                continue  # the source directory went away; the next pass removes the copy
            except OSError as exc:
                _fail("cannot copy the attributes of", source_dir, exc)
            self.snapshots[relative] = snapshot
            self.changed_directories.add(relative)

    def _snapshot(self, st):
        """The Snapshot of ``st``, or RACY when it changed too close to this pass's start to
        prove anything (see RACY_WINDOW_NS)."""
        if max(st.st_ctime_ns, st.st_mtime_ns) >= self._racy_from_ns:
            return RACY
        return Snapshot(st.st_ino, st.st_mode, st.st_ctime_ns, st.st_size)

    def _unchanged(self, relative, snapshot):
        """True when the previous pass copied ``relative`` as it is now, provably."""
        return snapshot is not RACY and self.snapshots.get(relative) == snapshot

    def _copy_file(self, relative, source_path, st, links, stats):
        snapshot = self._snapshot(st)
        if snapshot is RACY:
            stats["racy"] += 1
        target_path = os.path.join(self.target, relative)
        key = (st.st_dev, st.st_ino)
        first = links.get(key) if st.st_nlink > 1 else None
        if first is not None:
            nlink, members = self._link_members[key]
            self._link_members[key] = (nlink, members + 1)
            first_target = os.path.join(self.target, first)
            # A first copy made in this run has a new inode (and may still be in flight).
            if (
                not self._unchanged(relative, snapshot)
                or first in self.changed
                or not self._same_inode(target_path, first_target)
            ):
                self._followers.append((relative, target_path, first_target))
                self.changed.add(relative)
                stats["linked"] += 1
            self.snapshots[relative] = snapshot
            return
        if st.st_nlink > 1:
            links[key] = relative
            self._link_members[key] = (st.st_nlink, 1)
        if self._unchanged(relative, snapshot) and os.path.lexists(target_path):
            return
        if (
            self.trust_existing
            and relative not in self.snapshots
            and _looks_copied(source_path, target_path, st)
        ):
            self.snapshots[relative] = snapshot
            self.kept_existing += 1
            return
        if self._pool is not None and stat.S_ISREG(st.st_mode):
            self._pending.append(self._pool.submit(copy_entry, source_path, target_path, st))
            self._wait_for_copies(MAX_IN_FLIGHT)
        else:
            copy_entry(source_path, target_path, st)
        self.snapshots[relative] = snapshot
        self.changed.add(relative)
        stats["copied"] += 1
        if stat.S_ISREG(st.st_mode):
            stats["bytes"] += st.st_size

    @staticmethod
    def _same_inode(one, other):
        try:
            a, b = os.lstat(one), os.lstat(other)
        except OSError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    @staticmethod
    def _ensure_directory(path, device):
        """Make ``path`` a directory (replacing anything else there, never on another device
        than ``device``); True when it was made."""
        try:
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                return False
            remove_path(path, device)
        except FileNotFoundError:
            pass
        except OSError as exc:
            _fail("cannot read", path, exc)
        try:
            os.mkdir(path, 0o700)
        except OSError as exc:
            _fail("cannot create", path, exc)
        return True

    @staticmethod
    def _target_names(path):
        try:
            return set(os.listdir(path))
        except OSError as exc:
            _fail("cannot list", path, exc)


def _looks_copied(source_path, target_path, st):
    """True when the entry already at ``target_path`` has everything of the source's ``st``
    that a copy would give it except the content: type, mode, owner, size, mtime, device
    numbers or link target, holes, and every extended attribute. (A copy made by ``rsync -a``
    lacks the xattrs and fills the holes: it must be copied again.) The content is hashed by
    the check that follows."""
    try:
        existing = os.lstat(target_path)
        if not (
            existing.st_mode == st.st_mode
            and existing.st_size == st.st_size
            and existing.st_mtime_ns == st.st_mtime_ns
            and (existing.st_uid, existing.st_gid) == (st.st_uid, st.st_gid)
            and existing.st_rdev == st.st_rdev
        ):
            return False
        if stat.S_ISREG(st.st_mode):
            holes = st.st_blocks * 512 < st.st_size
            if holes != (existing.st_blocks * 512 < existing.st_size):
                return False
        elif stat.S_ISLNK(st.st_mode) and os.readlink(source_path) != os.readlink(target_path):
            return False
        return list_xattrs(source_path) == list_xattrs(target_path)
    except OSError:
        return False


def remove_path(path, device=None):
    """Remove ``path`` whatever it is (a directory with its content); absent is fine. Never
    descends into another filesystem: a directory on another device than ``path`` (or
    ``device``) makes it raise CopyError, having removed nothing of that filesystem."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        _fail("cannot remove", path, exc)
    if device is None:
        device = st.st_dev
    try:
        if stat.S_ISDIR(st.st_mode):
            if st.st_dev != device:
                raise CopyError("not removing %s: another filesystem is mounted there" % path)
            for name in os.listdir(path):
                remove_path(os.path.join(path, name), device)
            os.rmdir(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        _fail("cannot remove", path, exc)
