"""Read /proc/self/mountinfo and take down every mount below a path, deepest first.

The harness keeps its own small parser rather than the collection's, so that a bug in the
code under test cannot hide a mount the harness should have cleaned up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .commands import run

MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class MountEntry:
    """One line of mountinfo, with octal escapes (\\040 ...) decoded."""

    mount_id: int
    parent_id: int
    root: str
    mount_point: str
    mount_options: str
    fstype: str
    source: str
    super_options: str


def _unescape(field: str) -> str:
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        chunk = field[i : i + 4]
        if len(chunk) == 4 and chunk[0] == "\\" and chunk[1:].isdigit():
            out.append(chr(int(chunk[1:], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def read_mountinfo(path: str = MOUNTINFO) -> list[MountEntry]:
    """All mounts of this mount namespace, in mountinfo order."""
    entries = []
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            fields = line.split()
            separator = fields.index("-")
            entries.append(
                MountEntry(
                    mount_id=int(fields[0]),
                    parent_id=int(fields[1]),
                    root=_unescape(fields[3]),
                    mount_point=_unescape(fields[4]),
                    mount_options=fields[5],
                    fstype=fields[separator + 1],
                    source=_unescape(fields[separator + 2]),
                    super_options=fields[separator + 3] if len(fields) > separator + 3 else "",
                )
            )
    return entries


def _is_at_or_below(mount_point: str, top: str) -> bool:
    return mount_point == top or mount_point.startswith(top.rstrip("/") + "/")


def mounts_at_or_below(path: str | os.PathLike[str]) -> list[MountEntry]:
    """Mounts whose mount point is ``path`` or lies below it."""
    top = os.path.realpath(path)
    return [entry for entry in read_mountinfo() if _is_at_or_below(entry.mount_point, top)]


def mount_at(path: str | os.PathLike[str]) -> MountEntry | None:
    """The topmost mount on exactly ``path`` (the one a lookup of the path sees), or None."""
    target = os.path.realpath(path)
    stacked = [entry for entry in read_mountinfo() if entry.mount_point == target]
    return _topmost(stacked)


def _topmost(stacked: list[MountEntry]) -> MountEntry | None:
    # Mounts stacked on one path: the top one is the parent of none of the others.
    # (Mount ids are reused, so they do not tell the order.)
    ids = {entry.mount_id for entry in stacked}
    parents = {entry.parent_id for entry in stacked if entry.parent_id in ids}
    tops = [entry for entry in stacked if entry.mount_id not in parents]
    return tops[0] if tops else None


def unmount(path: str) -> None:
    """Unmount the top mount on ``path``; detach it lazily when it is busy."""
    if run(["umount", "--", path], check=False).returncode != 0:
        run(["umount", "--lazy", "--", path])


def _reachable_leaves(entries: list[MountEntry]) -> list[MountEntry]:
    """Mounts that umount(8) can reach by path and that have no reachable mount inside.

    A mount is reachable when it is the top one on its path and so is every ancestor in the
    given set: a directory bind-mounted onto a mount point hides that mount's submounts
    until it is unmounted itself.
    """
    by_id = {entry.mount_id: entry for entry in entries}
    by_point: dict[str, list[MountEntry]] = {}
    for entry in entries:
        by_point.setdefault(entry.mount_point, []).append(entry)
    tops = {top.mount_id for top in map(_topmost, by_point.values()) if top is not None}

    def reachable(entry: MountEntry) -> bool:
        if entry.mount_id not in tops:
            return False
        # The mount this one's path lies in: skip the mounts it is stacked on.
        parent = by_id.get(entry.parent_id)
        while parent is not None and parent.mount_point == entry.mount_point:
            parent = by_id.get(parent.parent_id)
        return parent is None or reachable(parent)

    visible = [entry for entry in entries if reachable(entry)]
    parents = {entry.parent_id for entry in visible}
    return [entry for entry in visible if entry.mount_id not in parents]


def unmount_tree(path: str | os.PathLike[str], keep: frozenset[int] = frozenset()) -> list[str]:
    """Unmount every mount at or below ``path``: reachable leaves first, deepest first.

    Mounts whose id is in ``keep`` stay (with what lies beneath them on the same path). This
    also takes down a directory bind-mounted onto itself, as dockerd leaves its data-root.
    Returns the mount points unmounted, in order.
    """
    done: list[str] = []
    for _attempt in range(1000):  # a bound on pathological stacks, far above any real test
        leaves = [
            entry
            for entry in _reachable_leaves(mounts_at_or_below(path))
            if entry.mount_id not in keep
        ]
        if not leaves:
            return done
        deepest = max(leaves, key=lambda entry: entry.mount_point.count("/"))
        unmount(deepest.mount_point)
        done.append(deepest.mount_point)
    raise RuntimeError("mounts below %s keep coming back; gave up after %d" % (path, len(done)))
