# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a container's bind mounts give it of the host (CIS Docker Benchmark v1.6.0 5.6, 5.20,
5.32): a sensitive host directory, a mount that propagates back to the host, the Docker or
containerd socket. Pure: it reads the ``Mounts`` of an inspection.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os

# CIS 5.6: a container that mounts one of these (itself, not a file below it) can change the
# host's system files.
SENSITIVE_HOST_DIRECTORIES = ("/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr")
# CIS 5.32: a socket that controls the engine, by name wherever it lives.
SOCKET_NAMES = ("docker.sock", "containerd.sock")
SHARED_PROPAGATION = ("shared", "rshared")


def host_mount_findings(container, mounts, sockets=()):
    """The bind mounts of ``mounts`` (an inspection's ``Mounts``) that expose the host, each
    ``{check, container, source, destination, rw, propagation}``; ``check`` is
    ``sensitive_host_mount`` (5.6), ``shared_mount_propagation`` (5.20) or ``socket_mounted``
    (5.32). ``sockets`` are the engine's and containerd's own socket paths."""
    found = []
    for mount in mounts or []:
        if mount.get("Type") != "bind":
            continue
        if not mount.get("Source"):
            continue  # nothing of the host to judge
        source = os.path.normpath(mount["Source"])
        entry = {
            "container": container,
            "source": source,
            "destination": mount.get("Destination"),
            "rw": bool(mount.get("RW")),
            "propagation": mount.get("Propagation") or None,
        }
        if source in SENSITIVE_HOST_DIRECTORIES:
            found.append(dict(entry, check="sensitive_host_mount"))
        if os.path.basename(source) in SOCKET_NAMES or source in sockets:
            found.append(dict(entry, check="socket_mounted"))
        if entry["propagation"] in SHARED_PROPAGATION:
            found.append(dict(entry, check="shared_mount_propagation"))
    return found


def describe(finding):
    """One line for a report: which container mounts what, where, and how (propagation only
    when it reaches back to the host: every bind has one, rprivate by default)."""
    return "%s mounts %s at %s (%s%s)" % (
        finding["container"],
        finding["source"],
        finding["destination"],
        "read-write" if finding["rw"] else "read-only",
        (
            ", propagation %s" % finding["propagation"]
            if finding["propagation"] in SHARED_PROPAGATION
            else ""
        ),
    )
