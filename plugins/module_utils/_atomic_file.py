# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replace a small file (daemon.json, fstab, a journal) so that a crash leaves the old or the
new content, never a mix; keep a copy of it first that only its owner may read.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import time

from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError

# A backup may hold what the file holds (proxy credentials in daemon.json): only the file's
# owner may read it, from the moment it exists.
BACKUP_MODE = 0o600
_CHUNK = 1 << 20


class BackupError(StorageError):
    """The backup copy could not be made; the message names the file and the copy, what went
    wrong and what to do. No partial copy is left behind."""


# The SELinux label of a file (Fedora and RHEL hosts: daemon.json is container_config_t).
SELINUX_XATTR = "security.selinux"
# What getxattr answers where a file has no label, or the filesystem or kernel keeps none.
_NO_LABEL = {errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP}


def _label_of(path):
    """The SELinux label of ``path`` as bytes, or None when it has none."""
    getxattr = getattr(os, "getxattr", None)
    if getxattr is None:
        return None
    try:
        return getxattr(path, SELINUX_XATTR, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _NO_LABEL or exc.errno == errno.ENOENT:
            return None
        raise


def write_text_atomically(path, text, new_mode=0o644):
    """Replace ``path`` with ``text`` in one step: a temporary file in the same directory,
    flushed to disk, given the owner, mode and SELinux label of the file it replaces (root:root
    and ``new_mode`` for a new file, which gets the label the policy gives new files there),
    then renamed over it; the directory is flushed too, so the rename survives a crash. Raises
    OSError (a label that cannot be carried over included); the temporary file is removed then
    and ``path`` is unchanged. A rename alone would leave the temporary file's label, which is
    the directory's default rather than the file's, as ``AnsibleModule.atomic_move`` avoids too.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        current = os.stat(path)
        mode, uid, gid = current.st_mode & 0o7777, current.st_uid, current.st_gid
    except FileNotFoundError:
        mode, uid, gid = new_mode, 0, 0
    label = _label_of(path)
    handle, temporary = tempfile.mkstemp(
        prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(text.encode("utf-8"))
            stream.flush()
            os.fsync(stream.fileno())
            if os.geteuid() == 0:
                os.fchown(stream.fileno(), uid, gid)
            os.fchmod(stream.fileno(), mode)
            if label is not None:
                os.setxattr(stream.fileno(), SELINUX_XATTR, label)
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)


def backup_name(path, now=None, pid=None):
    """``<path>.<pid>.<YYYY-MM-DD@HH:MM:SS>~`` (local time), the name
    ``AnsibleModule.backup_local`` gives its copies."""
    stamp = time.strftime("%Y-%m-%d@%H:%M:%S~", time.localtime(now))
    return "%s.%s.%s" % (path, os.getpid() if pid is None else pid, stamp)


def _backup_advice(error):
    """What to do about ``error`` (an OSError) when a backup could not be made."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free space on that filesystem, or turn the backup off, and run again"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "make the directory writable for the user the task runs as, and run again"
    return "fix that, or turn the backup off, and run again"


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def make_backup(path, now=None):
    """Copy the regular file ``path`` to ``backup_name(path)`` beside it and return the copy's
    path. The copy is created exclusively (``O_EXCL``, never through a symbolic link) with mode
    0600 from its first moment, given the file's owner and group (as root), its contents and
    its modification time, and flushed to disk with its directory. A process killed at any
    point leaves no copy that anyone but the file's owner may read.

    Raises BackupError naming both paths; a partial copy is removed then. ``path`` itself is
    only read.
    """
    destination = backup_name(path, now)
    source = _open_backup_source(path)
    try:
        source_stat = os.fstat(source)
        if not stat.S_ISREG(source_stat.st_mode):
            raise BackupError(
                "cannot back up %s: it is not a regular file; replace it with a file" % path
            )
        copy = _create_backup_copy(path, destination)
        try:
            _fill_backup(source, copy, source_stat)
        except BaseException as exc:
            os.close(copy)
            os.unlink(destination)
            if isinstance(exc, OSError):
                raise _backup_failure(path, destination, exc) from None
            raise
        os.close(copy)
    finally:
        os.close(source)
    try:
        _sync_directory(os.path.dirname(os.path.abspath(destination)))
    except OSError as exc:
        os.unlink(destination)
        raise _backup_failure(path, destination, exc) from None
    return destination


def _open_backup_source(path):
    """``path`` opened for reading, never through a symbolic link; BackupError otherwise."""
    try:
        # O_NONBLOCK: a FIFO in place of the file must not hang the open.
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BackupError(
                "cannot back up %s: it is a symbolic link; back up the file it points to" % path
            ) from None
        raise BackupError(
            "cannot back up %s: cannot read it: %s" % (path, exc.strerror or exc)
        ) from None


def _create_backup_copy(path, destination):
    """``destination`` created exclusively with BACKUP_MODE and open for writing; BackupError
    when it exists already or cannot be made."""
    try:
        return os.open(
            destination,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            BACKUP_MODE,
        )
    except FileExistsError:
        raise BackupError(
            "cannot back up %s: %s already exists (something else created it); move it "
            "away and run again" % (path, destination)
        ) from None
    except OSError as exc:
        raise _backup_failure(path, destination, exc) from None


def _backup_failure(path, destination, error):
    """The BackupError for ``error`` (an OSError) met while copying ``path`` to
    ``destination``: both paths, the reason, and what to do."""
    return BackupError(
        "cannot back up %s to %s: %s; %s"
        % (path, destination, error.strerror or error, _backup_advice(error))
    )


def _fill_backup(source, copy, source_stat):
    """Give the new backup ``copy`` the owner, contents and timestamps of ``source``."""
    # The mode asked for at creation may have lost bits to the umask: set it exactly.
    os.fchmod(copy, BACKUP_MODE)
    if os.geteuid() == 0:
        os.fchown(copy, source_stat.st_uid, source_stat.st_gid)
    while True:
        block = os.read(source, _CHUNK)
        if not block:
            break
        _write_all(copy, block)
    os.utime(copy, ns=(source_stat.st_atime_ns, source_stat.st_mtime_ns))
    os.fsync(copy)


def _sync_directory(directory):
    directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)
