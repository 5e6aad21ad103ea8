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
    regular file. An entry that vanishes while it is read (a tree in use) is yielded with the
    type ``vanished``.
    """
    root = os.path.normpath(root)
    device = os.lstat(root).st_dev
    groups = {}
    stack = [""]
    while stack:
        relative = stack.pop()
        path = os.path.join(root, relative) if relative else root
        try:
            st = os.lstat(path)
            if st.st_dev != device:
                yield relative, {"type": "mount point"}
                continue
            record = _record(path, st, hash_paths is True or relative in (hash_paths or ()))
            if record["type"] != "directory" and st.st_nlink > 1:
                _note_link_group(record, groups, st, relative)
            names = sorted(os.listdir(path), reverse=True) if record["type"] == "directory" else []
        except FileNotFoundError:
            yield relative, {"type": "vanished"}
            continue
        yield relative, record
        stack.extend(os.path.join(relative, name) if relative else name for name in names)


def _note_link_group(record, groups, st, relative):
    """Give every member of a hard-link group but the first (in walk order) the first one's
    path as ``link_group``. Groups are made of the members inside the tree: a file linked only
    to files outside it (which a copy cannot keep) has none, in the source as in the copy."""
    first = groups.setdefault((st.st_dev, st.st_ino), relative)
    if first != relative:
        record["link_group"] = first


def _record(path, st, hash_content):
    """The record of one entry whose lstat is ``st``. A regular file that may have holes
    (fewer blocks than its size) is marked ``_sparse``; its extents are read only when two
    records are compared (see ``_settle_extents``)."""
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
        if st.st_size and st.st_blocks * 512 < st.st_size:
            record["_sparse"] = path
        if hash_content:
            record["sha256"] = content_sha256(path)
    return record


def _settle_extents(one, other, one_path, other_path):
    """Give both file records their data extents when either may have holes: a copy that
    filled the holes in (or made new ones) then differs in ``extents``."""
    if one.get("type") != "file" or other.get("type") != "file":
        return
    if not (one.get("_sparse") or other.get("_sparse")):
        return
    for record, path in ((one, one_path), (other, other_path)):
        extents = data_extents(path, record["size"])
        if extents != [(0, record["size"])]:
            record["extents"] = extents


def _differences(relative, a, b, source, target, note):
    try:
        _settle_extents(a, b, os.path.join(source, relative), os.path.join(target, relative))
    except FileNotFoundError:
        note("%s vanished while it was compared" % (relative or "."), relative)
        return True
    found = False
    for key in sorted(set(a) | set(b)):
        if key.startswith("_"):
            continue
        if a.get(key) != b.get(key):
            found = True
            note(
                "%s: %s differs (source %r, copy %r)"
                % (relative or ".", key, a.get(key), b.get(key)),
                relative,
            )
    return found


class Differences:
    """What a comparison found: ``count``, up to ``limit`` sentences in ``examples``, and up to
    ``path_limit`` relative ``paths`` (``paths_complete`` tells whether they are all there)."""

    def __init__(self, limit=20, path_limit=100000):
        self.count = 0
        self.examples = []
        self.paths = set()
        self.paths_complete = True
        self.limit = limit
        self.path_limit = path_limit

    def __call__(self, message, relative):
        self.count += 1
        if len(self.examples) < self.limit:
            self.examples.append(message)
        if len(self.paths) < self.path_limit:
            self.paths.add(relative)
        else:
            self.paths_complete = False


def compare_trees(source, target, hash_paths=None, limit=20):
    """Differences between the trees at ``source`` and ``target``: ``(count, examples)``.

    ``examples`` holds at most ``limit`` sentences naming the path and what differs.
    """
    found = compare_trees_in_detail(source, target, hash_paths, limit)
    return found.count, found.examples


def compare_trees_in_detail(source, target, hash_paths=None, limit=20):
    """``compare_trees``, returning the Differences (with the differing paths)."""
    note = Differences(limit)
    left = walk(source, hash_paths)
    right = walk(target, hash_paths)
    a = next(left, None)
    b = next(right, None)
    while a is not None or b is not None:
        if b is None or (a is not None and _order(a[0]) < _order(b[0])):
            note("%s is missing from the copy" % (a[0] or "."), a[0])
            a = next(left, None)
        elif a is None or _order(b[0]) < _order(a[0]):
            note("%s is in the copy but not in the source" % (b[0] or "."), b[0])
            b = next(right, None)
        elif a[1]["type"] == "mount point" and b[1]["type"] == "directory":
            # The copier leaves an empty directory where the source had a mount point.
            a = next(left, None)
            b = next(right, None)
        else:
            _differences(a[0], a[1], b[1], source, target, note)
            a = next(left, None)
            b = next(right, None)
    return note


def compare_entries(source, target, paths, directories=(), hash_paths=None, limit=20):
    """Compare only the entries at ``paths`` (relative), and the name lists of ``directories``:
    after a full comparison, what a later incremental copy touched. Hard links are compared by
    their groups among these entries, and a copy may not have more links than its source (a
    full comparison checks the whole groups). Returns ``(count, examples)``."""
    note = Differences(limit)
    device = os.lstat(source).st_dev
    groups = ({}, {})  # hard-link groups among the compared entries, per tree
    for relative in sorted(set(paths) | set(directories), key=_order):
        records = []
        for side, root in enumerate((source, target)):
            path = os.path.join(root, relative) if relative else root
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                records.append(None)
                continue
            if root == source and st.st_dev != device:
                records.append({"type": "mount point"})
                continue
            record = _record(path, st, hash_paths is True or relative in (hash_paths or ()))
            if record["type"] != "directory":
                if st.st_nlink > 1:
                    _note_link_group(record, groups[side], st, relative)
                record["_links"] = st.st_nlink
            else:
                record["names"] = sorted(os.listdir(path)) if relative in directories else None
            records.append(record)
        a, b = records
        if a is None and b is None:
            continue
        if b is None:
            note("%s is missing from the copy" % (relative or "."), relative)
        elif a is None:
            note("%s is in the copy but not in the source" % (relative or "."), relative)
        elif a["type"] == "mount point" and b["type"] == "directory":
            continue
        elif b.get("_links", 0) > a.get("_links", 0):
            # The copy is linked to more files than the source: to one it should not be.
            note(
                "%s: the copy has %d hard links, the source %d"
                % (relative, b["_links"], a.get("_links", 0)),
                relative,
            )
        else:
            _differences(relative, a, b, source, target, note)
    return note.count, note.examples


def _order(relative):
    # The walk's order: depth-first with sorted names, which sorting the path components gives.
    return relative.split(os.sep) if relative else []
