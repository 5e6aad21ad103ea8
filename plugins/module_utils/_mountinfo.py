# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse /proc/<pid>/mountinfo and find the mount that holds a path.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os
import re
from collections import namedtuple

from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError

Mount = namedtuple(
    "Mount",
    [
        "mount_id",
        "parent_id",
        "device",  # "major:minor"
        "root",  # path inside the filesystem that is mounted here
        "mount_point",
        "mount_options",  # per-mount options, a string such as "rw,relatime"
        "optional_fields",  # tuple such as ("shared:1",)
        "fstype",
        "source",
        "super_options",  # per-superblock options, a string
    ],
)

_ESCAPE = re.compile(r"\\([0-7]{3})")

# Where the kernel and the init system keep runtime state (procfs, sysfs, devtmpfs, a tmpfs lost
# at reboot): never a place for Docker's data.
PSEUDO_FILESYSTEM_ROOTS = ("/proc", "/sys", "/dev", "/run")


def unescape_mount_field(field):
    """Undo the octal escapes the kernel uses in mountinfo (\\040 space, \\011 tab,
    \\012 newline, \\134 backslash)."""
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mountinfo_line(line):
    """Parse one mountinfo line into a Mount; raise ValueError naming the line when malformed."""
    fields = line.split(" ")
    try:
        separator = fields.index("-", 6)
    except ValueError:
        raise ValueError("mountinfo line has no ' - ' separator: %r" % line) from None
    if separator + 3 > len(fields):
        raise ValueError("mountinfo line is truncated after ' - ': %r" % line)
    return Mount(
        mount_id=int(fields[0]),
        parent_id=int(fields[1]),
        device=fields[2],
        root=unescape_mount_field(fields[3]),
        mount_point=unescape_mount_field(fields[4]),
        mount_options=fields[5],
        optional_fields=tuple(fields[6:separator]),
        fstype=fields[separator + 1],
        source=unescape_mount_field(fields[separator + 2]),
        super_options=unescape_mount_field(" ".join(fields[separator + 3 :])),
    )


def parse_mountinfo(text):
    """Parse the whole text of a mountinfo file into a list of Mount, in file order."""
    return [parse_mountinfo_line(line) for line in text.splitlines() if line.strip()]


def read_mountinfo(path="/proc/self/mountinfo"):
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        return parse_mountinfo(handle.read())


class MountTableError(StorageError):
    """The mount table cannot be read or parsed; the message names the file."""


def read_mount_table(path="/proc/self/mountinfo"):
    """``read_mountinfo`` for a module: MountTableError naming ``path`` when it fails."""
    try:
        return read_mountinfo(path)
    except (OSError, ValueError) as exc:
        raise MountTableError("cannot read the mount table %s: %s" % (path, exc)) from None


def split_options(options):
    """Split a mount option string into a dict; flags map to True.

    Overlay options may carry escaped commas (``\\,``) inside paths; those stay in the value.
    """
    result = {}
    for item in re.split(r"(?<!\\),", options):
        if not item:
            continue
        key, sep, value = item.partition("=")
        result[key] = value if sep else True
    return result


def is_within(path, parent):
    """True when ``path`` is ``parent`` or below it (both absolute and normalised; a trailing
    slash on either does not count). The one rule for "inside" of the collection."""
    parent = parent.rstrip("/")
    if not parent:
        return True
    path = path.rstrip("/")
    return path == parent or path.startswith(parent + "/")


def mount_for_path(mounts, path):
    """Return the Mount that a (real, absolute) path lives on, or None.

    The deepest mount point wins; among mounts on the same point the last one listed is on
    top (it hides the earlier ones).
    """
    best = None
    for mount in mounts:
        if not is_within(path, mount.mount_point):
            continue
        if best is None or len(mount.mount_point) >= len(best.mount_point):
            best = mount
    return best


def host_path(host_root, path):
    """``path`` of the host seen from a tree that stands for its ``/`` (``host_root``)."""
    return os.path.join(host_root, path.lstrip("/"))


def nearest_existing_ancestor(path, exists=os.path.exists):
    """Return ``path`` or its closest ancestor that exists (``/`` at worst)."""
    current = os.path.normpath(path)
    while not exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current
