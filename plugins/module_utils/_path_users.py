# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who uses a directory right now: mounts below it, and processes with their working
directory, root or an open file inside it.

``data_root`` asks this of its target before it copies into it, after it stopped the engine,
and again before it switches: an engine started on the target (by hand, by systemd, by another
run) mounts its containers' root filesystems there, and a copy pass that removes what the
source lacks would then delete files inside running containers.

This file touches the live system (/proc). Private to the dockerhost.storage collection: the
API may change without notice.
"""

from __future__ import annotations

import os

from ansible_collections.dockerhost.storage.plugins.module_utils import _mountinfo


def mounts_inside(directory, mounts):
    """Mount points in ``mounts`` (parsed mountinfo) strictly below ``directory``, plus a bind
    mount of ``directory`` onto itself (what dockerd makes of a data-root that is not a mount
    point of its own), as ``"<mount point> (<fstype>)"``. A filesystem mounted on
    ``directory`` itself (its own disk) is not listed."""
    directory = os.path.normpath(directory)
    by_id = {mount.mount_id: mount for mount in mounts}
    found = []
    for mount in mounts:
        if mount.mount_point == directory:
            parent = by_id.get(mount.parent_id)
            if parent is not None and parent.device == mount.device:
                found.append("%s (a bind mount onto itself, as dockerd makes)" % directory)
        elif _mountinfo.is_within(mount.mount_point, directory):
            found.append("%s (%s)" % (mount.mount_point, mount.fstype))
    return found


def processes_using(directory, proc="/proc"):
    """``(pid, command, how)`` of the processes whose working directory, root or an open file
    lies inside ``directory`` (this process excepted). Processes that vanish or cannot be read
    while looking are passed over."""
    directory = os.path.normpath(directory)
    found = []
    own = os.getpid()
    try:
        pids = [int(name) for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return found
    for pid in sorted(pids):
        if pid == own:
            continue
        base = os.path.join(proc, str(pid))
        how = None
        for link, label in (("cwd", "working directory"), ("root", "root directory")):
            try:
                if _mountinfo.is_within(os.readlink(os.path.join(base, link)), directory):
                    how = label
                    break
            except OSError:
                continue
        if how is None:
            try:
                descriptors = os.listdir(os.path.join(base, "fd"))
            except OSError:
                descriptors = []
            for descriptor in descriptors:
                try:
                    target = os.readlink(os.path.join(base, "fd", descriptor))
                except OSError:
                    continue
                if _mountinfo.is_within(target, directory):
                    how = "open file %s" % target
                    break
        if how is None:
            continue
        try:
            with open(os.path.join(base, "comm"), encoding="utf-8", errors="replace") as handle:
                command = handle.read().strip()
        except OSError:
            command = "?"
        found.append((pid, command, how))
    return found


def users_of(directory, mountinfo_path="/proc/self/mountinfo"):
    """Sentences naming every mount inside ``directory`` and every process using it; empty
    when nothing does."""
    sentences = [
        "%s is mounted inside it" % mount
        for mount in mounts_inside(directory, _mountinfo.read_mountinfo(mountinfo_path))
    ]
    sentences.extend(
        "process %d (%s) uses it: %s" % (pid, command, how)
        for pid, command, how in processes_using(directory)
    )
    return sentences
