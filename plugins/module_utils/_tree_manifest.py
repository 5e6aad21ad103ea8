# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Describe a directory tree entry by entry, and compare two trees, to prove a copy of a
Docker data-root is exact before anything relies on it.

An entry's record holds its type, mode, numeric owner, size, mtime (ns), device numbers,
every extended attribute (ACLs included, as system.posix_acl_* attributes), the symlink target,
its hard-link group (the first path of the group in walk order), the data extents of sparse
files, and optionally a SHA-256 of the content. Both trees are walked in the same sorted order
and compared as they go, so memory holds one directory listing per level plus the hard-link
groups, never the whole tree.

This file reads the live filesystem and changes nothing.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat

from ansible_collections.dockerhost.storage.plugins.module_utils._tree_copy import list_xattrs

_TYPES = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISREG, "file"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISCHR, "char-device"),
    (stat.S_ISBLK, "block-device"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
)


def file_type(mode):
    for test, name in _TYPES:
        if test(mode):
            return name
    return "unknown"


def data_extents(path, size):
    """``[(start, end), ...]`` of the data (non-hole) ranges of a regular file."""
    extents = []
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            extents.append((start, end))
            offset = end
    finally:
        os.close(fd)
    return extents


def content_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def walk(root, hash_paths=None):
    """Yield ``(relative_path, record)`` for ``root`` and everything below it, in sorted order,
    without crossing into other filesystems (a mount point is listed, its content is not).

    ``hash_paths`` is a container of relative paths whose content is hashed, or True for every
    regular file.
    """
    root = os.path.normpath(root)
    device = os.lstat(root).st_dev
    groups = {}
    stack = [""]
    while stack:
        relative = stack.pop()
        path = os.path.join(root, relative) if relative else root
        st = os.lstat(path)
        if st.st_dev != device:
            yield relative, {"type": "mount point"}
            continue
        yield relative, _record(path, st, relative, groups, hash_paths)
        if stat.S_ISDIR(st.st_mode):
            names = sorted(os.listdir(path), reverse=True)
            stack.extend(os.path.join(relative, name) if relative else name for name in names)


def _record(path, st, relative, groups, hash_paths):
    mode = st.st_mode
    kind = file_type(mode)
    record = {
        "type": kind,
        "mode": "%04o" % stat.S_IMODE(mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "mtime_ns": st.st_mtime_ns,
        "xattrs": sorted(
            (name, hashlib.sha256(value).hexdigest()) for name, value in list_xattrs(path).items()
        ),
    }
    if kind == "symlink":
        record["target"] = os.readlink(path)
    elif kind in ("char-device", "block-device"):
        record["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
    elif kind == "file":
        record["size"] = st.st_size
        extents = data_extents(path, st.st_size) if st.st_size else []
        if extents != [(0, st.st_size)]:
            record["extents"] = extents
        if hash_paths is True or (hash_paths and relative in hash_paths):
            record["sha256"] = content_sha256(path)
    if kind != "directory" and st.st_nlink > 1:
        record["link_group"] = groups.setdefault((st.st_dev, st.st_ino), relative)
    return record


def compare_trees(source, target, hash_paths=None, limit=20):
    """Differences between the trees at ``source`` and ``target``: ``(count, examples)``.

    ``examples`` holds at most ``limit`` sentences naming the path and what differs.
    """
    count = 0
    examples = []

    def note(message):
        nonlocal count
        count += 1
        if len(examples) < limit:
            examples.append(message)

    left = walk(source, hash_paths)
    right = walk(target, hash_paths)
    a = next(left, None)
    b = next(right, None)
    while a is not None or b is not None:
        if b is None or (a is not None and _order(a[0]) < _order(b[0])):
            note("%s is missing from the copy" % (a[0] or "."))
            a = next(left, None)
        elif a is None or _order(b[0]) < _order(a[0]):
            note("%s is in the copy but not in the source" % (b[0] or "."))
            b = next(right, None)
        elif a[1]["type"] == "mount point" and b[1]["type"] == "directory":
            # The copier leaves an empty directory where the source had a mount point.
            a = next(left, None)
            b = next(right, None)
        else:
            for key in sorted(set(a[1]) | set(b[1])):
                if a[1].get(key) != b[1].get(key):
                    note(
                        "%s: %s differs (source %r, copy %r)"
                        % (a[0] or ".", key, a[1].get(key), b[1].get(key))
                    )
            a = next(left, None)
            b = next(right, None)
    return count, examples


def _order(relative):
    # The walk's order: depth-first with sorted names, which sorting the path components gives.
    return relative.split(os.sep) if relative else []
