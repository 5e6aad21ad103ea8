# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probe a live filesystem the way dockerd does: statfs magic, d_type, a real overlay mount.

This is one of the few files that touch the live system. The probes write only inside a
temporary directory they create (``.dockerhost-storage-probe-*``) and remove it again.

The overlay test mount is made by a child process in a mount namespace of its own, with private
propagation, so the host never sees it and it cannot outlive that child; the child is killed
when the probe's own process dies. A probe killed before it removed its directory leaves that
directory behind, with nothing mounted in it; the next probe of the same directory removes it
once it is a minute old and no running probe holds it.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import shutil
import signal
import tempfile
import time

from ansible_collections.dockerhost.storage.plugins.module_utils import _mountinfo

# statfs f_type values (linux/magic.h and the filesystems' own headers).
FS_MAGIC = {
    0xEF53: "ext4",  # ext2, ext3 and ext4 share it; mountinfo tells them apart
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0x01021994: "tmpfs",
    0x858458F6: "ramfs",
    0x794C7630: "overlay",
    0x61756673: "aufs",
    0x2FC12FC1: "zfs",
    0x6969: "nfs",
    0xF15F: "ecryptfs",
    0x65735546: "fuse",
    0xF2F52010: "f2fs",
    0x73717368: "squashfs",
    0x4D44: "vfat",
    0x52654973: "reiserfs",
    0x3153464A: "jfs",
    0xFF534D42: "cifs",
    0xFE534D42: "smb2",
    0x00C36400: "ceph",
    0x47504653: "gpfs",
    0x9FA0: "proc",
    0x62656572: "sysfs",
    0x1373: "devfs",
    0x27E0EB: "cgroup",
    0x63677270: "cgroup2",
}

DT_UNKNOWN = 0

_libc = None


def _load_libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


class _Dirent64(ctypes.Structure):
    _fields_ = [
        ("d_ino", ctypes.c_uint64),
        ("d_off", ctypes.c_int64),
        ("d_reclen", ctypes.c_ushort),
        ("d_type", ctypes.c_ubyte),
        ("d_name", ctypes.c_char * 256),
    ]


def statfs_magic(path):
    """The f_type of the filesystem holding ``path`` (``statfs(2)``)."""
    libc = _load_libc()
    # struct statfs is at most 120 bytes on 64-bit Linux; f_type is its first word.
    buffer = ctypes.create_string_buffer(256)
    if libc.statfs(os.fsencode(path), buffer) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return ctypes.c_long.from_buffer(buffer).value & 0xFFFFFFFF


def filesystem_name_for_magic(magic):
    return FS_MAGIC.get(magic, "unknown")


def read_dirent_types(directory):
    """``{name: d_type}`` for the entries of ``directory`` as getdents returns them."""
    libc = _load_libc()
    libc.opendir.restype = ctypes.c_void_p
    libc.readdir64.restype = ctypes.POINTER(_Dirent64)
    libc.readdir64.argtypes = [ctypes.c_void_p]
    libc.closedir.argtypes = [ctypes.c_void_p]
    handle = libc.opendir(os.fsencode(directory))
    if not handle:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), directory)
    types = {}
    try:
        while True:
            entry = libc.readdir64(handle)
            if not entry:
                break
            name = os.fsdecode(entry.contents.d_name)
            if name not in (".", ".."):
                types[name] = entry.contents.d_type
    finally:
        libc.closedir(handle)
    return types


MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
CLONE_NEWNS = 0x00020000
UMOUNT_NOFOLLOW = 0x8
PR_SET_PDEATHSIG = 1

PROBE_PREFIX = ".dockerhost-storage-probe-"
# A probe directory that no running probe holds and that is older than this was left behind by
# a probe that was killed (its lock is taken a moment after the directory is made).
STALE_AFTER_SECONDS = 60
# Relative paths from inside the workspace, as dockerd does, keep the option string short and
# free of characters (',' ':') overlay would misread.
_OVERLAY_OPTIONS = "lowerdir=lower2:lower1,upperdir=upper,workdir=work"


def bind_mount(source, target):
    """Bind-mount the directory ``source`` on ``target`` (not recursive: mounts below
    ``source`` are not carried along); raise OSError naming ``target`` when refused."""
    _mount(source, target, "none", None, MS_BIND)


def _encode(value):
    return os.fsencode(value) if value is not None else None


def _mount(source, target, fstype, data, flags=0):
    libc = _load_libc()
    libc.mount.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    ]
    if libc.mount(_encode(source), _encode(target), _encode(fstype), flags, _encode(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def unmount(target):
    """Unmount ``target``; raise OSError naming it when the kernel refuses."""
    libc = _load_libc()
    if libc.umount2(os.fsencode(target), 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


_PERMISSION_ERRNOS = (errno.EPERM, errno.EACCES)


def _describe(exc):
    """``No space left on device (ENOSPC)`` for an OSError."""
    name = errno.errorcode.get(exc.errno, str(exc.errno))
    return "%s (%s)" % (exc.strerror or exc, name)


def _describe_errno(number):
    return _describe(OSError(number, os.strerror(number)))


def judge_test_mount(answer):
    """``(overlay_ok, overlay_error)`` for the answer of the overlay test mount's process.

    ``answer["stage"]`` names the step: ``fork`` (no process could be started), ``namespace``
    (``unshare(CLONE_NEWNS)``), ``private`` (making ``/`` private in that namespace), ``mount``,
    ``view`` (the mount was made: ``visible`` lists the merged view, or ``errno`` says why it
    could not be read), or ``ended`` (the process gave no answer: ``signal`` or
    ``exit_status``). ``errno`` is the error of the failed step. Only a mount that was made and
    then showed the wrong view, or a mount the kernel refused for another reason than privilege,
    is False; everything that kept the mount from being tried is None (unknown).
    """
    stage = answer.get("stage")
    number = answer.get("errno")
    if stage == "view" and number is None:
        visible = answer.get("visible")
        if visible == ["dir", "file"]:
            return True, None
        return False, "merged view shows %s instead of both lower layers" % visible
    if stage == "view" or (stage == "mount" and number not in _PERMISSION_ERRNOS):
        return False, "overlay mount with two lower directories failed: %s" % _describe_errno(
            number
        )
    if stage in ("namespace", "private", "mount") and number in _PERMISSION_ERRNOS:
        return None, (
            "the overlay test mount was not permitted: %s; run as root (become: true)"
            % _describe_errno(number)
        )
    if stage == "private" and number == errno.EINVAL:
        return None, (
            "the overlay test mount was not tried: / is not a mount point for this process (a "
            "chroot?), so the mount could not be kept private to the probe; run the check "
            "outside the chroot"
        )
    if stage == "namespace":
        hint = " (is the sysctl user.max_mnt_namespaces 0?)" if number == errno.ENOSPC else ""
        return None, (
            "the overlay test mount was not tried: a mount namespace of its own, which keeps "
            "the mount from outliving the probe, could not be made: %s%s"
            % (_describe_errno(number), hint)
        )
    if stage == "private":
        return None, (
            "the overlay test mount was not tried: making / private in its mount namespace "
            "failed: %s" % _describe_errno(number)
        )
    if stage == "fork":
        return None, (
            "the overlay test mount was not tried: no process could be started for it: %s"
            % _describe_errno(number)
        )
    if answer.get("signal") is not None:
        how = "was killed by signal %d" % answer["signal"]
    elif answer.get("exit_status") is not None:
        how = "exited with status %d" % answer["exit_status"]
    else:
        how = "ended"
    return None, "the overlay test mount gave no answer: its process %s" % how


def _make_test_mount(workspace_fd, parent_pid, while_mounted):
    """In the child process: the overlay mount in ``workspace_fd``, in a mount namespace of its
    own with private propagation. The answer for ``judge_test_mount``; None when the parent is
    already gone."""
    libc = _load_libc()
    # This process, and with it the namespace and the mount, goes when the probe's does.
    libc.prctl(
        ctypes.c_int(PR_SET_PDEATHSIG),
        ctypes.c_ulong(signal.SIGKILL),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
    )
    if os.getppid() != parent_pid:
        return None
    # Before unshare, which moves the working directory into the new namespace: a directory
    # file descriptor stays in the host's, where mount(2) refuses a target (EINVAL).
    os.fchdir(workspace_fd)
    if libc.unshare(ctypes.c_int(CLONE_NEWNS)) != 0:
        return {"stage": "namespace", "errno": ctypes.get_errno()}
    # A copied namespace stays a peer of the host's shared mounts: without this the test mount
    # would propagate back to the host.
    try:
        _mount(None, "/", None, None, MS_REC | MS_PRIVATE)
    except OSError as exc:
        return {"stage": "private", "errno": exc.errno}
    try:
        _mount("overlay", "merged", "overlay", _OVERLAY_OPTIONS)
    except OSError as exc:
        return {"stage": "mount", "errno": exc.errno}
    try:
        visible = sorted(os.listdir("merged"))
        if while_mounted is not None:
            while_mounted()
    except OSError as exc:
        return {"stage": "view", "errno": exc.errno}
    finally:
        # The mount goes with the namespace anyway; unmounting it first is tidier. Never lazy,
        # never following a symlink.
        libc.umount2(b"merged", ctypes.c_int(UMOUNT_NOFOLLOW))
    return {"stage": "view", "visible": visible}


def _test_mount_in_child(workspace_fd, while_mounted=None):
    """Run ``_make_test_mount`` in a child process and return its answer (read from a pipe)."""
    read_end, write_end = os.pipe()
    parent_pid = os.getpid()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        return {"stage": "fork", "errno": exc.errno}
    if pid == 0:
        status = 1
        try:
            os.close(read_end)
            answer = _make_test_mount(workspace_fd, parent_pid, while_mounted)
            if answer is not None:
                data = json.dumps(answer).encode("ascii")
                while data:
                    data = data[os.write(write_end, data) :]
                status = 0
        finally:
            # Never return into the caller's code in the child, whatever happened.
            os._exit(status)
    os.close(write_end)
    chunks = []
    try:
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(read_end)
    try:
        wait_status = os.waitpid(pid, 0)[1]
    except ChildProcessError:  # SIGCHLD ignored: the child was reaped already
        wait_status = None
    try:
        answer = json.loads(b"".join(chunks).decode("ascii")) if chunks else None
    except ValueError:
        answer = None
    if isinstance(answer, dict):
        return answer
    if wait_status is not None and os.WIFSIGNALED(wait_status):
        return {"stage": "ended", "signal": os.WTERMSIG(wait_status)}
    if wait_status is not None and os.WIFEXITED(wait_status):
        return {"stage": "ended", "exit_status": os.WEXITSTATUS(wait_status)}
    return {"stage": "ended"}


def _hold_lock(directory_fd):
    """Mark a probe directory as in use for as long as ``directory_fd`` (and the child that
    inherits it) is open. Where flock is refused (some network filesystems) nothing is marked,
    and no other probe removes anything there either."""
    try:
        fcntl.flock(directory_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass


def _remove_stale_probe_directories(parent):
    """Remove the probe directories in ``parent`` that killed probes left behind: real
    directories owned by this user, older than STALE_AFTER_SECONDS, not locked by a running
    probe, with nothing mounted inside. Returns sentences naming the ones with a mount inside
    (left by releases that made the test mount in the host's namespace), which stay."""
    try:
        names = sorted(name for name in os.listdir(parent) if name.startswith(PROBE_PREFIX))
    except OSError:
        return []
    if not names:
        return []
    try:
        mounts = _mountinfo.read_mountinfo()
    except (OSError, ValueError):
        return []
    now = time.time()
    problems = []
    for name in names:
        path = os.path.join(parent, name)
        try:
            directory_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            info = os.fstat(directory_fd)
            if info.st_uid != os.geteuid() or now - info.st_mtime < STALE_AFTER_SECONDS:
                continue
            try:
                fcntl.flock(directory_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a probe is running in it, or locks are not kept here
            real = os.path.realpath(path)
            inside = [
                mount.mount_point
                for mount in mounts
                if mount.mount_point == real or mount.mount_point.startswith(real + "/")
            ]
            if inside:
                problems.append(
                    "an earlier probe left %s mounted; unmount it (umount %s) and remove %s"
                    % (", ".join(inside), " ".join(reversed(inside)), path)
                )
                continue
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(directory_fd)
    return problems


def _new_probe_result():
    """The probe's result before anything was tried: nothing written, nothing known."""
    return {
        "writable": False,
        "write_error": None,
        "d_type": None,
        "d_type_error": None,
        "overlay_ok": None,
        "overlay_error": None,
        "cleanup_error": None,
    }


def _record_creation_failure(result, parent, exc):
    """Record in ``result`` why no probe directory could be made in ``parent``: for want of
    privilege whether it is writable stays unknown (None); any other error is a write error."""
    if exc.errno in _PERMISSION_ERRNOS:
        result["writable"] = None
        result["d_type_error"] = (
            "cannot create a probe directory in %s: %s; run as root (become: true)"
            % (parent, _describe(exc))
        )
    else:
        result["write_error"] = "cannot create a directory in %s: %s" % (
            parent,
            _describe(exc),
        )


def _lay_out_workspace(workspace_fd):
    """Make the test mount's directories in the workspace, with a file in ``lower1`` and a
    directory in ``lower2`` for the d_type check to read back."""
    for name in ("lower1", "lower2", "upper", "work", "merged"):
        os.mkdir(name, 0o700, dir_fd=workspace_fd)
    file_fd = os.open(
        "lower1/file",
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
        0o600,
        dir_fd=workspace_fd,
    )
    try:
        os.write(file_fd, b"lower1\n")
    finally:
        os.close(file_fd)
    os.mkdir("lower2/dir", 0o700, dir_fd=workspace_fd)


def _record_d_type(result, workspace):
    """Record in ``result`` whether the directory entries of ``lower1`` and ``lower2`` carry
    their file types (d_type), or why getdents failed."""
    try:
        types = read_dirent_types(os.path.join(workspace, "lower1"))
        types.update(read_dirent_types(os.path.join(workspace, "lower2")))
        result["d_type"] = all(value != DT_UNKNOWN for value in types.values()) and bool(types)
    except OSError as exc:
        result["d_type_error"] = "getdents failed: %s" % (exc.strerror or exc)


def probe_directory(parent, mount_overlay=True, _while_mounted=None):
    """Probe the filesystem of ``parent`` inside a temporary directory, then remove it.

    Returns ``{"d_type": bool|None, "d_type_error": str|None, "overlay_ok": bool|None,
    "overlay_error": str|None, "writable": bool|None, "write_error": str|None,
    "cleanup_error": str|None}``.
    ``overlay_ok`` is the result of mounting overlay with two lower directories, an upper and a
    work directory, which is dockerd's own acceptance test for overlay2. It stays None when
    ``mount_overlay`` is false (the caller knows overlay is not registered, and a mount would
    load the module) or when the mount was refused for lack of privilege: both are "unknown",
    not "unsupported". Likewise ``writable`` is None, not False, when only privilege is missing.
    ``cleanup_error`` says what to remove (or unmount) by hand when the probe's directory, or
    one an earlier probe left, could not be removed.

    The test mount is made by a child process in a private mount namespace (see the module
    docstring). ``_while_mounted`` is for tests only: called in that child while the mount
    exists.
    """
    result = _new_probe_result()
    cleanup_problems = _remove_stale_probe_directories(parent)
    result["cleanup_error"] = "; ".join(cleanup_problems) or None
    try:
        workspace = tempfile.mkdtemp(prefix=PROBE_PREFIX, dir=parent)
    except OSError as exc:
        _record_creation_failure(result, parent, exc)
        return result
    result["writable"] = True
    workspace_fd = None
    try:
        try:
            workspace_fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            _hold_lock(workspace_fd)
            _lay_out_workspace(workspace_fd)
        except OSError as exc:
            # A full filesystem (ENOSPC, EDQUOT) fails here; dockerd would fail the same way.
            result["writable"] = False
            result["write_error"] = "cannot write in %s: %s" % (parent, _describe(exc))
            return result
        _record_d_type(result, workspace)
        if not mount_overlay:
            result["overlay_error"] = (
                "overlay is not registered in /proc/filesystems; the test mount was skipped so "
                "that a read-only check loads no kernel module"
            )
            return result
        result["overlay_ok"], result["overlay_error"] = judge_test_mount(
            _test_mount_in_child(workspace_fd, _while_mounted)
        )
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
        if workspace_fd is not None:
            os.close(workspace_fd)
        if os.path.lexists(workspace):
            cleanup_problems.append(
                "could not remove the probe's directory %s; remove it" % workspace
            )
            result["cleanup_error"] = "; ".join(cleanup_problems)
    return result
