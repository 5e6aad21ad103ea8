# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A throwaway container that proves overlay2 works end to end on a live engine.

It is created from a local image (never pulled), started with a shell command that writes a
file and deletes one that comes from an image layer, and then checked from the host: its merged
directory is an overlay mount, the write landed in its upper directory, and the deletion left a
whiteout there (a character device 0/0). The container is removed afterwards, whatever happened.

This file touches the live system (the Engine API and the layer store). Private to the
dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os
import secrets
import stat
import time

from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    EngineNotFound,
    EngineUnavailable,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError
from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import read_mountinfo
from ansible_collections.dockerhost.storage.plugins.module_utils._overlay_mounts import (
    split_lowerdir,
)

PROBE_FILE = "dockerhost-storage-probe"
PROBE_CONTENT = "written by the mounts_info probe\n"
# The container's command: write into the root, delete the lower-layer file given as $1, then
# wait to be removed. Paths arrive as arguments, never inside the script text.
PROBE_SCRIPT = 'printf "%s" "$2" > "/$3" && rm -f -- "$1" && exec sleep 600'
# Paths the engine bind-mounts into a container or fills at start: never chosen for deletion.
_SKIP_TOP = ("dev", "proc", "sys", "etc/hosts", "etc/hostname", "etc/resolv.conf", "run", "tmp")


class ProbeError(StorageError):
    """The probe could not run; the message says why and what to do."""


def pick_lower_file(lower_dirs, max_entries=5000):
    """A regular file of an image layer to delete in the container, as a path inside it.

    ``lower_dirs`` are the container's lower diff directories, topmost first; ``-init`` layers
    (files the engine manages) are skipped. The first regular file found breadth first in the
    topmost image layer that has one wins, looking in ``/etc`` first. Returns None when no layer
    holds a regular file.
    """
    for layer in lower_dirs:
        if os.path.basename(os.path.dirname(layer)).endswith("-init"):
            continue
        # /etc first: deleting a program or a library could stop the probe's own shell.
        queue = ["etc", ""]
        seen = 0
        while queue and seen < max_entries:
            relative = queue.pop(0)
            try:
                entries = sorted(os.scandir(os.path.join(layer, relative)), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                seen += 1
                inside = os.path.join(relative, entry.name)
                if inside in _SKIP_TOP or (relative == "" and entry.name == "etc"):
                    continue
                if entry.is_file(follow_symlinks=False):
                    return "/" + inside
                if entry.is_dir(follow_symlinks=False):
                    queue.append(inside)
    return None


def _mount_of(merged, mountinfo_path):
    """The mount on ``merged`` (the last one listed is on top), or None."""
    found = None
    for mount in read_mountinfo(mountinfo_path):
        if mount.mount_point == merged:
            found = mount
    return found


def _observe(upper, victim):
    """What the host sees in the upper directory: (write ok, whiteout ok, whiteout found)."""
    try:
        with open(os.path.join(upper, PROBE_FILE), encoding="utf-8") as handle:
            written = handle.read() == PROBE_CONTENT
    except OSError:
        written = False
    try:
        info = os.lstat(os.path.join(upper, victim.lstrip("/")))
    except OSError:
        return written, False, "nothing"
    if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
        return written, True, "a character device 0/0"
    return written, False, "a file of mode %o, device %d" % (info.st_mode, info.st_rdev)


def _require_image(client, image):
    """Raise ProbeError unless ``image`` is in the engine: the probe never pulls it."""
    try:
        client.inspect_image(image)
    except EngineNotFound:
        raise ProbeError(
            "probe_image %s is not present in the engine on %s; it is never pulled: import or "
            "build it on the host first (docker image ls shows what is there)"
            % (image, client.socket_path)
        ) from None


def _new_result(image, name):
    """The probe's result before anything ran: nothing observed, nothing removed."""
    return {
        "attempted": True,
        "ok": False,
        "image": image,
        "container": name,
        "victim": None,
        "merged_dir": None,
        "merged_mounted": False,
        "write_in_upperdir": False,
        "whiteout_in_upperdir": False,
        "removed": False,
        "problems": [],
    }


def _probe_config(image):
    """The create request of the probe container: the probe script, no network, a label."""
    return {
        "Image": image,
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": [PROBE_SCRIPT],
        "NetworkDisabled": True,
        "HostConfig": {"NetworkMode": "none"},
        "Labels": {"org.dockerhost-storage.probe": "mounts_info"},
    }


def _watch_probe(client, container_id, result, merged, upper, mountinfo_path, timeout):
    """Look from the host until the write and the whiteout both show in ``upper``, the
    container stops, or ``timeout`` seconds pass; each look is recorded in ``result``.
    Returns what was found where the whiteout belongs."""
    victim = result["victim"]
    deadline = time.monotonic() + timeout
    found = "nothing"
    while True:
        mount = _mount_of(merged, mountinfo_path)
        result["merged_mounted"] = mount is not None and mount.fstype == "overlay"
        written, whiteout, found = _observe(upper, victim)
        result["write_in_upperdir"], result["whiteout_in_upperdir"] = written, whiteout
        if (written and whiteout) or time.monotonic() >= deadline:
            break
        state = client.inspect_container(container_id).get("State") or {}
        if not state.get("Running"):
            result["problems"].append(
                "the probe container stopped early (exit code %s): the image needs /bin/sh, "
                "printf, rm and sleep" % state.get("ExitCode")
            )
            break
        time.sleep(0.05)
    return found


def _report_observations(result, merged, upper, found):
    """Add a sentence to ``result["problems"]`` for each thing the host did not see: the
    overlay mount, the written file, the whiteout (``found`` is what was there instead)."""
    victim = result["victim"]
    if not result["merged_mounted"]:
        result["problems"].append("%s is not an overlay mount while it runs" % merged)
    if not result["write_in_upperdir"]:
        result["problems"].append(
            "a file written in the container did not appear as %s" % os.path.join(upper, PROBE_FILE)
        )
    if not result["whiteout_in_upperdir"]:
        result["problems"].append(
            "deleting %s in the container left %s at %s, not a character device 0/0"
            % (victim, found, os.path.join(upper, victim.lstrip("/")))
        )


def run_probe(client, image, mountinfo_path="/proc/self/mountinfo", timeout=30.0):
    """Run the probe container from ``image`` on ``client`` (a ContainerEngineClient).

    Returns a dict: ``attempted`` (True), ``ok``, ``image``, ``container`` (its name),
    ``victim`` (the lower-layer file deleted), ``merged_dir``, ``merged_mounted``,
    ``write_in_upperdir``, ``whiteout_in_upperdir``, ``removed``, ``problems`` (sentences).
    Raises ProbeError when the image is missing or the container cannot be created or started.
    """
    _require_image(client, image)
    name = "dockerhost-storage-probe-" + secrets.token_hex(4)
    result = _new_result(image, name)
    container_id = None
    try:
        # Created first with a harmless command, only to learn its layers: the file to delete
        # must come from an image layer, and those are known once the container exists.
        config = _probe_config(image)
        try:
            container_id = client.create_container(name + "-layers", config)
            lowers = _graph_data(client.inspect_container(container_id)).get("LowerDir")
            victim = pick_lower_file(split_lowerdir(lowers or ""))
        finally:
            if container_id:
                client.remove_container(container_id)
                container_id = None
        if victim is None:
            raise ProbeError(
                "probe_image %s has no regular file in its layers to delete; use an image with "
                "files, such as a busybox or Debian image" % image
            )
        result["victim"] = victim
        config["Cmd"] = [PROBE_SCRIPT, "probe", victim, PROBE_CONTENT, PROBE_FILE]
        container_id = client.create_container(name, config)
        client.start_container(container_id)
        data = _graph_data(client.inspect_container(container_id))
        merged, upper = data.get("MergedDir"), data.get("UpperDir")
        result["merged_dir"] = merged
        found = _watch_probe(client, container_id, result, merged, upper, mountinfo_path, timeout)
        _report_observations(result, merged, upper, found)
    except EngineUnavailable as exc:
        raise ProbeError("the probe container failed: %s" % exc) from None
    finally:
        if container_id:
            client.remove_container(container_id)
            result["removed"] = True
    result["ok"] = not result["problems"]
    return result


def _graph_data(inspection):
    graph = inspection.get("GraphDriver") or {}
    if graph.get("Name") != "overlay2" or not isinstance(graph.get("Data"), dict):
        raise ProbeError(
            "the probe needs the overlay2 graphdriver; the engine reports %s"
            % (graph.get("Name") or "no layer directories (containerd image store)")
        )
    return graph["Data"]
