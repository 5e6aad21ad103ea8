# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""aufs mounts of containers checked against the aufs driver's layer metadata.

dockerd's aufs driver keeps ``<data-root>/aufs/{diff,layers,mnt}/<id>``: ``layers/<id>`` lists
the layer's parents, nearest first, one per line, and a container is mounted on ``mnt/<id>``
with the branches ``diff/<id>=rw`` then ``diff/<parent>=ro+wh`` for each parent. The kernel shows
the branches of a mount (super option ``si=<hex>``) in ``/sys/fs/aufs/si_<hex>/br<index>``, one
``<path>=<permission>`` per file.

Files (/sys and the data-root) are read below ``host_root`` so tests can hand in fixture trees.
Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os
import re

from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import host_path
from ansible_collections.dockerhost.storage.plugins.module_utils._overlay_mounts import problem

_BRANCH_FILE = re.compile(r"^br(\d+)$")


def parse_branch(text):
    """``/var/lib/docker/aufs/diff/abc=ro+wh`` -> ``("/var/lib/docker/aufs/diff/abc", "ro+wh")``.

    The permission follows the last ``=``; a line without one has permission None.
    """
    text = text.rstrip("\n")
    path, sep, permission = text.rpartition("=")
    if not sep:
        return text, None
    return path, permission


def read_aufs_branches(si, host_root="/"):
    """Branches of the aufs mount ``si`` (the hex id of its ``si=`` option), in index order, as
    ``(path, permission)``; None when ``/sys/fs/aufs/si_<si>`` does not exist."""
    directory = host_path(host_root, os.path.join("/sys/fs/aufs", "si_" + si))
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return None
    indexed = []
    for name in names:
        match = _BRANCH_FILE.match(name)
        if match:
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                indexed.append((int(match.group(1)), parse_branch(handle.read())))
    return [branch for _index, branch in sorted(indexed)]


def read_aufs_parents(data_root, layer_id, host_root="/"):
    """Parent layer ids of ``layer_id``, nearest first, from ``aufs/layers/<id>``; None when
    the file is missing."""
    path = host_path(host_root, os.path.join(data_root, "aufs", "layers", layer_id))
    try:
        with open(path, encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()]
    except FileNotFoundError:
        return None


def read_aufs_mount_id(data_root, container_id, host_root="/"):
    """The aufs layer id of a container from ``image/aufs/layerdb/mounts/<id>/mount-id``."""
    path = os.path.join(data_root, "image", "aufs", "layerdb", "mounts", container_id, "mount-id")
    path = host_path(host_root, path)
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except FileNotFoundError:
        return None


def expected_branches(data_root, layer_id, parents):
    """The branches dockerd mounts for ``layer_id``: its diff read-write, then every parent's
    diff read-only with whiteouts."""
    diff = os.path.join(data_root, "aufs", "diff")
    return [(os.path.join(diff, layer_id), "rw")] + [
        (os.path.join(diff, parent), "ro+wh") for parent in parents
    ]


def _aufs_si(super_options):
    """The id of an aufs mount from its last ``si=`` option, or None without one."""
    si = None
    for option in super_options.split(","):
        if option.startswith("si="):
            si = option[3:]
    return si


def _check_aufs_mount(container, merged, wanted, mounts_at, details, host_root):
    """Problems of a running container's mount on ``merged``: an aufs mount whose branches
    (from /sys/fs/aufs) are ``wanted``, in order. Sets ``details["mounted"]`` when it is an
    aufs mount."""
    mount = mounts_at.get(merged)
    if mount is None or mount.fstype != "aufs":
        found = "a %s mount" % mount.fstype if mount is not None else "no mount"
        return [problem(container, "merged_mount", merged, "an aufs mount", found)]
    details["mounted"] = True
    si = _aufs_si(mount.super_options)
    branches = read_aufs_branches(si, host_root) if si else None
    if branches is None:
        return [
            problem(
                container,
                "aufs_branches",
                merged,
                "branches under /sys/fs/aufs/si_%s" % si,
                "no branch list (is sysfs mounted?)",
            )
        ]
    found = [(path, (permission or "").split("+")[0]) for path, permission in branches]
    expected = [(path, permission.split("+")[0]) for path, permission in wanted]
    if found != expected:
        return [
            problem(
                container,
                "aufs_branches",
                merged,
                " ".join("%s=%s" % branch for branch in wanted),
                " ".join("%s=%s" % (path, permission) for path, permission in branches),
            )
        ]
    return []


def check_aufs_container(container, data_root, running, mounts_at, host_root="/"):
    """Check one container on the aufs driver.

    ``mounts_at`` maps mount points to ``_mountinfo.Mount`` records. A running container must
    have an aufs mount on ``aufs/mnt/<id>`` whose branches (from /sys/fs/aufs) are exactly the
    driver's chain; a stopped one needs its layers file and every diff directory. Returns
    ``(problems, details)`` with ``details``: ``merged_dir``, ``mounted``, ``layers``.
    """
    details = {"merged_dir": None, "mounted": False, "layers": None}
    layer_id = read_aufs_mount_id(data_root, container, host_root)
    if layer_id is None:
        path = os.path.join(data_root, "image", "aufs", "layerdb", "mounts", container)
        return [problem(container, "aufs_mount_id", path, "a mount-id file", "nothing")], details
    merged = os.path.join(data_root, "aufs", "mnt", layer_id)
    details["merged_dir"] = merged
    parents = read_aufs_parents(data_root, layer_id, host_root)
    if parents is None:
        path = os.path.join(data_root, "aufs", "layers", layer_id)
        return [problem(container, "aufs_layers", path, "the layer's parent list", "nothing")], (
            details
        )
    wanted = expected_branches(data_root, layer_id, parents)
    details["layers"] = len(parents)
    problems = [
        problem(container, "aufs_diff", path, "an existing diff directory", "nothing")
        for path, _permission in wanted
        if not os.path.isdir(host_path(host_root, path))
    ]
    if not running:
        return problems, details
    problems.extend(_check_aufs_mount(container, merged, wanted, mounts_at, details, host_root))
    return problems, details
