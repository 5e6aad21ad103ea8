# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What reclaim could remove, step by step: the engine's objects (read once, over the Engine
API) and the layer store on disk, and what each object is expected to free, measured by
walking its directories.

``read_inventory`` asks the engine; ``Candidates`` turns an inventory into each step's
candidates, oldest first (the shape of ``_reclaim_policy``). Nothing is written.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import stat
from collections import Counter
from urllib.parse import quote

from ansible_collections.dockerhost.storage.plugins.module_utils import _layer_store
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import EngineNotFound
from ansible_collections.dockerhost.storage.plugins.module_utils._overlay_mounts import (
    parse_overlay_options,
)

STOPPED_STATES = ("created", "exited", "dead")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$")
ANONYMOUS_VOLUME_LABEL = "com.docker.volume.anonymous"


def parse_engine_time(value):
    """An Engine API timestamp (RFC 3339, ``2026-12-02T19:42:50.71Z``; a volume's CreatedAt is
    in the daemon's local time, ``...T14:42:50-05:00``) or Unix seconds -> Unix seconds; None
    for the zero time (``0001-01-01T00:00:00Z``) and anything unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if value > 0 else None
    match = _TIMESTAMP.match(value or "") if isinstance(value, str) else None
    if not match or match.group(1) == "0001":
        return None
    seconds = calendar.timegm(tuple(int(part) for part in match.groups()[:6]))
    offset = match.group(8) or "Z"
    if offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds + float(match.group(7) or 0)


def _query(filters):
    return quote(json.dumps(filters, separators=(",", ":")))


def read_inventory(client, steps, api_version):
    """The engine's objects the ``steps`` need: ``containers`` and ``images`` (inspections),
    ``build_cache`` (records) and ``volumes``."""
    containers = _inspect_each(client, "/containers/%s/json", "/containers/json?all=1")
    images = _inspect_each(client, "/images/%s/json", "/images/json?all=1")
    inventory = {"containers": containers, "images": images, "build_cache": [], "volumes": []}
    if "build_cache" in steps:
        typed = _api_at_least(api_version, (1, 42))
        answer = client.get("/system/df?type=build-cache" if typed else "/system/df") or {}
        inventory["build_cache"] = answer.get("BuildCache") or []
    if "anonymous_volumes" in steps:
        answer = client.get("/volumes?filters=" + _query({"dangling": ["true"]})) or {}
        inventory["volumes"] = answer.get("Volumes") or []
    return inventory


def _inspect_each(client, inspect_path, list_path):
    """The inspections of every object ``list_path`` lists; one removed meanwhile (a ``--rm``
    container that exited) is left out."""
    found = []
    for entry in client.get(list_path) or []:
        try:
            found.append(client.get(inspect_path % entry["Id"]))
        except EngineNotFound:
            continue
    return found


def _api_at_least(version, wanted):
    try:
        return tuple(int(part) for part in str(version).split(".")[:2]) >= wanted
    except ValueError:
        return False


# ---- measuring -----------------------------------------------------------------------------


def measure(paths):
    """``(bytes, inodes)`` the files under ``paths`` hold (``_layer_store.paths_usage``)."""
    return _layer_store.paths_usage(paths)


# ---- the store's layout --------------------------------------------------------------------


def layer_dirs(graph_data, home):
    """Layer directory ids under ``home`` (``<store>/overlay2``) named by an inspection's
    GraphDriver data: its upper directory and its lower chain."""
    ids = []
    if not isinstance(graph_data, dict):
        return ids
    paths = [graph_data.get("UpperDir") or ""] + (graph_data.get("LowerDir") or "").split(":")
    for path in paths:
        parent, leaf = os.path.split(path)
        if leaf == "diff" and os.path.dirname(parent) == home:
            ids.append(os.path.basename(parent))
    return ids


class StoreLayout:
    """The overlay2 store under ``store_root``: short links and layerdb, read once."""

    def __init__(self, store_root):
        self.root = store_root
        self.home = os.path.join(store_root, "overlay2")
        self.layerdb = os.path.join(store_root, "image", "overlay2", "layerdb")
        cache_ids, _mounts = _layer_store.read_layerdb_references(store_root)
        self.chain_of = {cache_id: chain for chain, cache_id in cache_ids.items() if cache_id}
        self.links = {}
        link_dir = os.path.join(self.home, _layer_store.LINK_DIR)
        for short in _layer_store._list_dir(link_dir):
            try:
                target = os.readlink(os.path.join(link_dir, short))
            except OSError:
                continue
            parts = target.split("/")
            if len(parts) == 3 and parts[0] == ".." and parts[2] == "diff":
                self.links.setdefault(parts[1], []).append(os.path.join(link_dir, short))

    def layer_paths(self, layer_id):
        """What removing layer ``layer_id`` removes: its directory, its short links and, for
        an image layer, its layerdb entry."""
        paths = [os.path.join(self.home, layer_id)] + self.links.get(layer_id, [])
        chain = self.chain_of.get(layer_id)
        if chain:
            paths.append(os.path.join(self.layerdb, "sha256", chain))
        return paths

    def image_paths(self, image_id):
        digest = image_id.split(":", 1)[-1]
        base = os.path.join(self.root, "image", "overlay2", "imagedb")
        return [
            os.path.join(base, "content", "sha256", digest),
            os.path.join(base, "metadata", "sha256", digest),
        ]

    def container_paths(self, inspection):
        container_id = inspection["Id"]
        graph = (inspection.get("GraphDriver") or {}).get("Data") or {}
        own = [
            layer
            for layer in layer_dirs(graph, self.home)
            if layer in _own_layers(graph, self.home)
        ]
        paths = [os.path.join(self.root, "containers", container_id)]
        paths.append(os.path.join(self.layerdb, "mounts", container_id))
        for layer in own:
            paths.extend(self.layer_paths(layer))
        return paths


def _own_layers(graph, home):
    """A container's own layer directories: its upper layer and its ``-init`` layer."""
    ids = layer_dirs({"UpperDir": graph.get("UpperDir")}, home)
    lower = layer_dirs({"LowerDir": (graph.get("LowerDir") or "").split(":")[0]}, home)
    return set(ids + [layer for layer in lower if layer.endswith("-init")])


def mounted_layers(mounts, layout):
    """Layer directory ids under ``layout.home`` that an overlay mount in ``mounts`` uses as a
    lower, upper or work directory (relative and ``l/<short>`` paths resolved)."""
    short_to_layer = {
        os.path.basename(link): layer for layer, links in layout.links.items() for link in links
    }
    used = set()
    for mount in mounts:
        if mount.fstype != "overlay":
            continue
        options = parse_overlay_options(mount.super_options)
        paths = options["lowerdirs"] + options["datadirs"]
        paths += [options["upperdir"] or "", options["workdir"] or ""]
        for path in paths:
            path = os.path.normpath(os.path.join(layout.home, path))
            parent, leaf = os.path.split(path)
            if parent == os.path.join(layout.home, _layer_store.LINK_DIR):
                used.add(short_to_layer.get(leaf, leaf))
            elif os.path.dirname(parent) == layout.home:
                used.add(os.path.basename(parent))
    return used


def _labels(inspection):
    config = inspection.get("Config") if isinstance(inspection, dict) else None
    labels = config.get("Labels") if isinstance(config, dict) else None
    return labels if isinstance(labels, dict) else {}


def image_tags(image):
    """An image's tags, sorted (``<none>:<none>``, what older engines show, is none)."""
    return sorted(tag for tag in image.get("RepoTags") or [] if tag != "<none>:<none>")


def _is_dangling(image):
    return not image_tags(image)


def _image_name(image):
    return ", ".join(image_tags(image)) or "<none>"


def _container_age(inspection, now):
    state = inspection.get("State") or {}
    moment = parse_engine_time(state.get("FinishedAt")) or parse_engine_time(
        inspection.get("Created")
    )
    return None if moment is None else now - moment


def _last_used(record):
    return parse_engine_time(record.get("LastUsedAt") or record.get("CreatedAt")) or 0


def _age(value, now):
    moment = parse_engine_time(value)
    return None if moment is None else now - moment


class Candidates:
    """Each step's candidates for an inventory, oldest first, given what earlier steps chose.

    ``layout`` is the overlay2 store (None on the containerd image store, where the engine's
    snapshots live in containerd's root and what an object frees is not known in advance);
    ``mounts`` the mount table, for the proof that an orphaned layer is not in use.
    """

    def __init__(self, inventory, policy, now, layout, mounts=(), image_filesystem="data_root"):
        self.inventory = inventory
        self.policy = policy
        self.now = now
        self.layout = layout
        self.mounts = mounts
        self.image_filesystem = image_filesystem
        self.references = Counter()
        for image in inventory["images"]:
            self.references.update(set(self._image_layers(image)))

    def __call__(self, step, chosen):
        """The candidates of ``step`` not among ``chosen`` (what earlier steps took)."""
        taken = {(candidate["kind"], candidate["id"]) for candidate in chosen}
        for candidate in getattr(self, "_" + step)(chosen):
            if (candidate["kind"], candidate["id"]) not in taken:
                yield candidate

    # -- helpers --

    def _image_layers(self, image):
        if not self.layout:
            return []
        return layer_dirs((image.get("GraphDriver") or {}).get("Data"), self.layout.home)

    def _kept_containers(self, chosen):
        gone = {candidate["id"] for candidate in chosen if candidate["kind"] == "container"}
        return [c for c in self.inventory["containers"] if c["Id"] not in gone]

    def _candidate(self, step, kind, object_id, name, age, figures, filesystem="data_root"):
        size, inodes = figures
        return {
            "step": step,
            "kind": kind,
            "id": object_id,
            "name": name,
            "filesystem": filesystem,
            "bytes": size,
            "inodes": inodes,
            "age_seconds": None if age is None else int(age),
        }

    def _old_enough(self, age, option):
        return age is not None and age >= self.policy[option]

    def _kept_by_label(self, labels):
        return self.policy["keep_label"] in (labels or {})

    # -- build cache --

    def _build_cache(self, chosen):
        records = [r for r in self.inventory["build_cache"] if not r.get("InUse")]
        records.sort(key=lambda r: (_last_used(r), r.get("ID") or ""))
        remaining = sum(r.get("Size") or 0 for r in records)
        keep = self.policy["build_cache_keep"]
        for record in records:
            if keep and remaining <= keep:
                return
            age = _age(record.get("LastUsedAt") or record.get("CreatedAt"), self.now)
            remaining -= record.get("Size") or 0
            if not self._old_enough(age, "build_cache_unused_for"):
                continue
            # A record shared with an image frees nothing by itself, but holds the image's
            # layer: without it, removing the image frees that layer too.
            figures = (0, None) if record.get("Shared") else (record.get("Size") or 0, None)
            if self.layout and not record.get("Shared"):
                paths = self.layout.layer_paths(record["ID"])
                if os.path.isdir(paths[0]):
                    figures = (figures[0], measure(paths)[1])
            name = "%s (%s)" % (record.get("Description") or "", record.get("Type") or "")
            yield self._candidate(
                "build_cache",
                "build_cache",
                record["ID"],
                name,
                age,
                figures,
                self.image_filesystem,
            )

    # -- images --

    def _removable_images(self, chosen, dangling, option):
        used = {c.get("Image") for c in self._kept_containers(chosen)}
        gone = {candidate["id"] for candidate in chosen if candidate["kind"] == "image"}
        parents = {i.get("Parent") for i in self.inventory["images"] if i["Id"] not in gone}
        images = sorted(
            self.inventory["images"],
            key=lambda i: (parse_engine_time(i.get("Created")) or 0, i["Id"]),
        )
        for image in images:
            if image["Id"] in gone or image["Id"] in used or image["Id"] in parents:
                continue
            if _is_dangling(image) != dangling or self._kept_by_label(_labels(image)):
                continue
            age = _age(image.get("Created"), self.now)
            if self._old_enough(age, option):
                yield image, age

    def _images(self, step, chosen, dangling, option):
        for image, age in self._removable_images(chosen, dangling, option):
            layers = set(self._image_layers(image))
            figures = (None, None)
            if self.layout:
                freed = [layer for layer in layers if self.references[layer] <= 1]
                paths = self.layout.image_paths(image["Id"])
                for layer in freed:
                    paths.extend(self.layout.layer_paths(layer))
                figures = measure(paths)
            candidate = self._candidate(
                step, "image", image["Id"], _image_name(image), age, figures, self.image_filesystem
            )
            candidate["tags"] = image_tags(image)
            yield candidate
            if chosen and chosen[-1] is candidate:
                self.references.subtract(layers)

    def _dangling_images(self, chosen):
        return self._images("dangling_images", chosen, True, "dangling_images_older_than")

    def _unused_images(self, chosen):
        return self._images("unused_images", chosen, False, "unused_images_older_than")

    # -- containers --

    def _stopped_containers(self, chosen):
        stopped = [
            c
            for c in self.inventory["containers"]
            if (c.get("State") or {}).get("Status") in STOPPED_STATES
            and not self._kept_by_label(_labels(c))
        ]
        stopped.sort(key=lambda c: (-(_container_age(c, self.now) or 0), c["Id"]))
        for container in stopped:
            age = _container_age(container, self.now)
            if not self._old_enough(age, "stopped_containers_older_than"):
                continue
            figures = (
                measure(self.layout.container_paths(container)) if self.layout else (None, None)
            )
            filesystem = "data_root" if self.layout else self.image_filesystem
            name = (container.get("Name") or "").lstrip("/")
            yield self._candidate(
                "stopped_containers", "container", container["Id"], name, age, figures, filesystem
            )

    # -- orphaned layers --

    def engine_layers(self):
        """Every layer directory an image or container of the engine names."""
        named = set()
        for inspection in self.inventory["images"] + self.inventory["containers"]:
            named.update(
                layer_dirs((inspection.get("GraphDriver") or {}).get("Data"), self.layout.home)
            )
        return named

    def in_use(self, layer_id):
        """Why ``layer_id`` must stay (the engine names it, a mount uses it, it is build
        cache), or None."""
        if layer_id in self.engine_layers():
            return "an image or container of the engine names it"
        if layer_id in mounted_layers(self.mounts, self.layout):
            return "an overlay mount uses it"
        if layer_id in {record.get("ID") for record in self.inventory["build_cache"]}:
            return "it is build cache"
        return None

    def orphaned_layers(self):
        """The store's layer directories that no layerdb entry, no image or container of the
        engine, no overlay mount and no build cache record names, named as dockerd's layer
        store names its directories (BuildKit keeps snapshots of its own beside them)."""
        known = {c["Id"] for c in self.inventory["containers"]}
        report = _layer_store.check_layer_store(
            self.layout.root, known_containers=known, measure_orphans=False
        )
        blocked = self.engine_layers() | mounted_layers(self.mounts, self.layout)
        blocked |= {record.get("ID") for record in self.inventory["build_cache"]}
        return [
            entry["id"]
            for entry in report["orphaned_layers"]
            if _layer_store.is_layer_store_name(entry["id"]) and entry["id"] not in blocked
        ]

    def _orphaned_layers(self, chosen):
        if not self.layout:
            return
        aged = []
        for layer_id in self.orphaned_layers():
            age = layer_age(os.path.join(self.layout.home, layer_id), self.now)
            if self._old_enough(age, "orphaned_layers_older_than"):
                aged.append((age, layer_id))
        for age, layer_id in sorted(aged, reverse=True):
            figures = measure(self.layout.layer_paths(layer_id))
            yield self._candidate("orphaned_layers", "layer", layer_id, layer_id, age, figures)

    # -- logs and volumes --

    def _container_logs(self, chosen):
        logs = []
        for container in self._kept_containers(chosen):
            config = (container.get("HostConfig") or {}).get("LogConfig") or {}
            path = log_path(container, self.inventory.get("store_root"))
            if config.get("Type") != "json-file" or not path:
                continue
            files = log_files(path)
            apparent = sum(info.st_size for _path, info in files)
            if apparent > self.policy["container_logs_larger_than"]:
                size = sum(info.st_blocks * 512 for _path, info in files)
                logs.append((size, container))
        for size, container in sorted(logs, key=lambda pair: -pair[0]):
            name = (container.get("Name") or "").lstrip("/")
            yield self._candidate("container_logs", "log", container["Id"], name, None, (size, 0))

    def _anonymous_volumes(self, chosen):
        used = set()
        for container in self._kept_containers(chosen):
            for mount in container.get("Mounts") or []:
                if mount.get("Type") == "volume":
                    used.add(mount.get("Name"))
        volumes = [
            v for v in self.inventory["volumes"] if is_anonymous(v) and v["Name"] not in used
        ]
        volumes = [v for v in volumes if not self._kept_by_label(v.get("Labels"))]
        volumes.sort(key=lambda v: (parse_engine_time(v.get("CreatedAt")) or 0, v["Name"]))
        store = self.inventory.get("store_root")
        for volume in volumes:
            age = _age(volume.get("CreatedAt"), self.now)
            if not self._old_enough(age, "anonymous_volumes_older_than"):
                continue
            directory = os.path.join(store or "/nonexistent", "volumes", volume["Name"])
            figures = (
                measure([directory]) if store and volume.get("Driver") == "local" else (None, None)
            )
            yield self._candidate(
                "anonymous_volumes", "volume", volume["Name"], volume["Name"], age, figures
            )


def is_anonymous(volume):
    """A volume the engine made for a container (``-v /path``, a VOLUME of the image): the
    label engines since 23 set, or on older ones a 64-digit hex name and no labels. Named
    volumes are never anonymous."""
    labels = volume.get("Labels") or {}
    if ANONYMOUS_VOLUME_LABEL in labels:
        return True
    return bool(_HEX64.fullmatch(volume.get("Name") or "")) and not labels


def layer_age(path, now):
    """Seconds since ``path`` or its ``diff`` directory last changed (the newer of their
    ctimes, which no one can set back); None when it cannot be read."""
    times = []
    for candidate in (path, os.path.join(path, "diff")):
        try:
            times.append(os.lstat(candidate).st_ctime)
        except OSError:
            continue
    return now - max(times) if times else None


def log_path(container, store_root):
    """The json-file log of ``container`` when it is ``<store>/containers/<id>/<id>-json.log``
    (None otherwise: a log elsewhere is not this module's to truncate)."""
    container_id = container.get("Id") or ""
    path = container.get("LogPath") or ""
    if not store_root or not _HEX64.fullmatch(container_id):
        return None
    expected = os.path.join(store_root, "containers", container_id, container_id + "-json.log")
    return expected if os.path.normpath(path) == expected else None


def log_files(path):
    """``[(path, lstat)]`` of a json-file log and its uncompressed rotated files (regular files
    only)."""
    directory, name = os.path.split(path)
    files = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return files
    for entry in entries:
        # Compressed rotated files stay: truncated, they would be gzip files no one can read.
        if entry.name != name and not entry.name.startswith(name + "."):
            continue
        if entry.name.endswith(".gz"):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # rotated away meanwhile
        if stat.S_ISREG(info.st_mode):
            files.append((entry.path, info))
    return sorted(files)
