# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who fills the disk: the containers and images that hold the most of a data-root.

The sizes are the engine's own (the Engine API's disk usage, ``GET /system/df``, what
``docker system df -v`` prints): a container's writable layer (``SizeRw``) and an image's size,
shared size and unique size (what no other image shares, the bytes removing it gives back).
The engine does not count logs: a container's log is the size of its json-file log and the
rotated files beside it (or the ``local`` driver's files), read from the data-root.

``rank`` is pure; ``log_bytes`` reads one container's directory; ``disk_users`` asks the engine.
Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os
import re

from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    EngineUnavailable,
)

# How many containers and images the fact keeps, biggest first.
DEFAULT_TOP = 5
# The log driver ``local`` keeps its files in this directory of the container's directory.
LOCAL_LOG_DIRECTORY = "local-logs"
# A container id as the engine gives it; anything else is never joined to a path.
_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")


def log_bytes(store_root, container_id):
    """Bytes of the logs the engine keeps for a container under ``store_root`` (the data-root,
    or its remapped root): ``<id>-json.log`` and its rotated files (``.1``, ``.2.gz``, ...),
    and everything in ``local-logs/``. Apparent sizes, as ``ls -l`` shows them and
    ``max-size`` counts them. None when the container's directory cannot be read, or
    ``container_id`` is not a full container id."""
    if not _CONTAINER_ID.fullmatch(container_id):
        return None
    directory = os.path.join(store_root, "containers", container_id)
    prefix = container_id + "-json.log"
    total = 0
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
                elif entry.name == LOCAL_LOG_DIRECTORY and entry.is_dir(follow_symlinks=False):
                    total += _files_bytes(entry.path)
    except FileNotFoundError:
        return 0  # the engine has not written its directory (or removed it meanwhile)
    except OSError:
        return None
    return total


def _files_bytes(directory):
    with os.scandir(directory) as entries:
        return sum(
            entry.stat(follow_symlinks=False).st_size
            for entry in entries
            if entry.is_file(follow_symlinks=False)
        )


def _size(value):
    """A size from the engine: an int of 0 or more, else None (-1 means not computed)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _image_name(image):
    tags = [tag for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"]
    return tags[0] if tags else short_id(image.get("Id", ""))


def short_id(identifier):
    """The 12 hex digits ``docker`` shows of an id (``sha256:`` left out)."""
    return str(identifier).rsplit(":", maxsplit=1)[-1][:12]


def container_entries(system_df, logs):
    """Every container of a ``/system/df`` answer: ``{name, id, image, state, writable_bytes,
    log_bytes, bytes}``; ``logs`` maps a container's full id to its log bytes (None: not
    readable). ``bytes`` is what is known of the two, the writable layer and the log."""
    found = []
    for container in system_df.get("Containers") or []:
        identifier = container.get("Id", "")
        names = container.get("Names") or []
        # The engine leaves SizeRw out when it is 0 (Go's omitempty).
        writable = _size(container.get("SizeRw", 0))
        logged = logs.get(identifier)
        found.append(
            {
                "name": names[0].lstrip("/") if names else short_id(identifier),
                "id": short_id(identifier),
                "image": container.get("Image") or None,
                "state": container.get("State") or None,
                "writable_bytes": writable,
                "log_bytes": logged,
                "bytes": (writable or 0) + (logged or 0),
            }
        )
    return found


def image_entries(system_df):
    """Every image of a ``/system/df`` answer: ``{image, id, size_bytes, shared_bytes,
    unique_bytes, containers}``; ``unique_bytes`` is None when the engine did not compute the
    shared size."""
    found = []
    for image in system_df.get("Images") or []:
        size = _size(image.get("Size"))
        shared = _size(image.get("SharedSize"))
        unique = size - shared if size is not None and shared is not None else None
        containers = image.get("Containers")
        found.append(
            {
                "image": _image_name(image),
                "id": short_id(image.get("Id", "")),
                "size_bytes": size,
                "shared_bytes": shared,
                "unique_bytes": unique,
                "containers": containers
                if isinstance(containers, int) and containers >= 0
                else None,
            }
        )
    return found


def rank(system_df, logs, top=DEFAULT_TOP):
    """The ``disk_users`` fact from a ``/system/df`` answer and the containers' log bytes:
    the ``top`` containers by writable layer plus log, and the ``top`` images by unique size,
    biggest first (ties by name), with the totals over all of them."""
    containers = container_entries(system_df, logs)
    images = image_entries(system_df)
    layers = _size(system_df.get("LayersSize"))
    return {
        "checked": True,
        "problem": None,
        "containers": sorted(containers, key=lambda c: (-c["bytes"], c["name"]))[:top],
        "images": sorted(images, key=lambda i: (-(i["unique_bytes"] or 0), i["image"]))[:top],
        "totals": {
            "containers": len(containers),
            "writable_bytes": sum(c["writable_bytes"] or 0 for c in containers),
            "log_bytes": sum(c["log_bytes"] or 0 for c in containers),
            "images": len(images),
            "images_bytes": layers,
        },
    }


def disk_users(client, store_root, top=DEFAULT_TOP):
    """Ask the engine (``client``, an EngineClient) for its disk usage and rank it (``rank``);
    the logs are read under ``store_root``. An engine that fails to answer gives
    ``{checked: False, problem}``: the rest of an audit does not depend on it."""
    try:
        answer = client.get("/system/df")
    except (OSError, EngineUnavailable) as exc:
        return {"checked": False, "problem": "the engine's disk usage (GET /system/df): %s" % exc}
    if not isinstance(answer, dict):
        return {
            "checked": False,
            "problem": "the engine answered GET /system/df with something other than an object",
        }
    logs = {
        container.get("Id", ""): log_bytes(store_root, container.get("Id", ""))
        for container in answer.get("Containers") or []
        if container.get("Id")
    }
    return rank(answer, logs, top)
