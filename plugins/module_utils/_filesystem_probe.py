# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probe a live filesystem the way dockerd does: statfs magic, d_type, a real overlay mount.

This is one of the few files that touch the live system. The probes write only inside a
temporary directory they create and always remove it again.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import tempfile

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


def bind_mount(source, target):
    """Bind-mount the directory ``source`` on ``target`` (not recursive: mounts below
    ``source`` are not carried along); raise OSError naming ``target`` when refused."""
    _mount(source, target, "none", None, MS_BIND)


def _mount(source, target, fstype, data, flags=0):
    libc = _load_libc()
    libc.mount.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    ]
    if (
        libc.mount(
            os.fsencode(source),
            os.fsencode(target),
            os.fsencode(fstype),
            flags,
            os.fsencode(data) if data is not None else None,
        )
        != 0
    ):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def unmount(target):
    """Unmount ``target``; raise OSError naming it when the kernel refuses."""
    libc = _load_libc()
    if libc.umount2(os.fsencode(target), 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def _umount(target):
    """Unmount ``target`` (lazily when busy); True when it is no longer mounted."""
    libc = _load_libc()
    mnt_detach = 2
    if libc.umount2(os.fsencode(target), 0) == 0:
        return True
    return libc.umount2(os.fsencode(target), mnt_detach) == 0


_PERMISSION_ERRNOS = (errno.EPERM, errno.EACCES)


def _describe(exc):
    """``No space left on device (ENOSPC)`` for an OSError."""
    name = errno.errorcode.get(exc.errno, str(exc.errno))
    return "%s (%s)" % (exc.strerror or exc, name)


def probe_directory(parent, mount_overlay=True):
    """Probe the filesystem of ``parent`` inside a temporary directory, then remove it.

    Returns ``{"d_type": bool|None, "d_type_error": str|None, "overlay_ok": bool|None,
    "overlay_error": str|None, "writable": bool|None, "write_error": str|None,
    "cleanup_error": str|None}``.
    ``overlay_ok`` is the result of mounting overlay with two lower directories, an upper and a
    work directory, which is dockerd's own acceptance test for overlay2. It stays None when
    ``mount_overlay`` is false (the caller knows overlay is not registered, and a mount would
    load the module) or when the mount was refused for lack of privilege: both are "unknown",
    not "unsupported". Likewise ``writable`` is None, not False, when only privilege is missing.
    """
    result = {
        "writable": False,
        "write_error": None,
        "d_type": None,
        "d_type_error": None,
        "overlay_ok": None,
        "overlay_error": None,
        "cleanup_error": None,
    }
    try:
        workspace = tempfile.mkdtemp(prefix=".dockerhost-storage-probe-", dir=parent)
    except OSError as exc:
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
        return result
    result["writable"] = True
    merged = os.path.join(workspace, "merged")
    mounted = False
    try:
        try:
            for name in ("lower1", "lower2", "upper", "work", "merged"):
                os.mkdir(os.path.join(workspace, name))
            with open(os.path.join(workspace, "lower1", "file"), "w", encoding="utf-8") as handle:
                handle.write("lower1\n")
            os.mkdir(os.path.join(workspace, "lower2", "dir"))
        except OSError as exc:
            # A full filesystem (ENOSPC, EDQUOT) fails here; dockerd would fail the same way.
            result["writable"] = False
            result["write_error"] = "cannot write in %s: %s" % (parent, _describe(exc))
            return result
        try:
            types = read_dirent_types(os.path.join(workspace, "lower1"))
            types.update(read_dirent_types(os.path.join(workspace, "lower2")))
            result["d_type"] = all(value != DT_UNKNOWN for value in types.values()) and bool(types)
        except OSError as exc:
            result["d_type_error"] = "getdents failed: %s" % (exc.strerror or exc)

        if not mount_overlay:
            result["overlay_error"] = (
                "overlay is not registered in /proc/filesystems; the test mount was skipped so "
                "that a read-only check loads no kernel module"
            )
            return result
        # Relative paths from inside the workspace, as dockerd does, keep the option string
        # short and free of characters (',' ':') overlay would misread.
        cwd = os.getcwd()
        try:
            os.chdir(workspace)
            _mount(
                "overlay", "merged", "overlay", "lowerdir=lower2:lower1,upperdir=upper,workdir=work"
            )
            mounted = True
            visible = sorted(os.listdir("merged"))
            if visible != ["dir", "file"]:
                result["overlay_ok"] = False
                result["overlay_error"] = (
                    "merged view shows %s instead of both lower layers" % visible
                )
            else:
                result["overlay_ok"] = True
        except OSError as exc:
            if exc.errno in _PERMISSION_ERRNOS and not mounted:
                result["overlay_error"] = (
                    "the overlay test mount was not permitted: %s; run as root (become: true)"
                    % _describe(exc)
                )
            else:
                result["overlay_ok"] = False
                result["overlay_error"] = (
                    "overlay mount with two lower directories failed: %s" % _describe(exc)
                )
        finally:
            os.chdir(cwd)
    finally:
        if mounted and not _umount(merged):
            result["cleanup_error"] = (
                "could not unmount the probe's overlay at %s; unmount it and remove %s"
                % (merged, workspace)
            )
        if result["cleanup_error"] is None:
            shutil.rmtree(workspace, ignore_errors=True)
    return result
