# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integrity of an overlay2 layer store on disk, read from a data-root path.

The layout dockerd keeps (20.10 and later):

- ``overlay2/<id>/{diff/,link,lower,work/,merged/}``; ``link`` holds the layer's short name,
  ``lower`` (absent on a base layer) the chain below it as ``l/<short>:l/<short>...``;
- ``overlay2/l/<short>`` -> ``../<id>/diff`` (relative links keep mount data under a page);
- ``image/overlay2/layerdb/sha256/<chain id>/cache-id``: the layer directory of an image layer;
- ``image/overlay2/layerdb/mounts/<container id>/{mount-id,init-id}``: a container's layer
  directory and its ``-init`` layer.

Only reads; nothing is written. Private to the dockerhost.storage collection: the API may change
without notice.
"""

from __future__ import annotations

import os
import re
import stat

from ansible_collections.dockerhost.storage.plugins.module_utils._overlay_mounts import problem

LINK_DIR = "l"


def _read_text(path):
    """The stripped content of a small file, or None when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _list_dir(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def disk_usage(path):
    """Bytes allocated to the files under ``path`` (like ``du -s --bytes`` on blocks: each
    hard-linked inode counted once), without crossing into other mounts."""
    return paths_usage([path])[0]


def paths_usage(paths):
    """``(bytes, inodes)`` the files under ``paths`` hold (blocks allocated, each inode once,
    symlinks not followed, other filesystems not entered); a path that does not exist counts
    nothing."""
    seen = set()
    blocks = 0
    stack = []
    for path in paths:
        try:
            info = os.lstat(path)
        except OSError:
            continue
        blocks += _count_once(info, seen)
        if stat.S_ISDIR(info.st_mode):
            stack.append((path, info.st_dev))
    while stack:
        directory, device = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if info.st_dev != device:
                continue
            blocks += _count_once(info, seen)
            if stat.S_ISDIR(info.st_mode):
                stack.append((entry.path, device))
    return blocks * 512, len(seen)


def _count_once(info, seen):
    key = (info.st_dev, info.st_ino)
    if key in seen:
        return 0
    seen.add(key)
    return info.st_blocks


def read_layerdb_references(data_root, driver="overlay2"):
    """Layer directory ids the image store refers to.

    Returns ``(cache_ids, mounts)``: ``cache_ids`` maps a layer's chain id to its cache-id
    (None when the file is missing or empty); ``mounts`` maps a container id to
    ``{"mount-id": ..., "init-id": ...}``.
    """
    layerdb = os.path.join(data_root, "image", driver, "layerdb")
    cache_ids = {}
    for chain_id in _list_dir(os.path.join(layerdb, "sha256")):
        cache_ids[chain_id] = _read_text(os.path.join(layerdb, "sha256", chain_id, "cache-id"))
    mounts = {}
    for container_id in _list_dir(os.path.join(layerdb, "mounts")):
        base = os.path.join(layerdb, "mounts", container_id)
        mounts[container_id] = {
            "mount-id": _read_text(os.path.join(base, "mount-id")),
            "init-id": _read_text(os.path.join(base, "init-id")),
        }
    return cache_ids, mounts


def _check_short_links(home, layer_ids):
    """Problems of ``l/``: every entry a link to ``../<id>/diff`` of an existing layer.
    Returns ``(problems, links, dangling)``: ``links`` maps a short name to the layer id it
    names, ``dangling`` is the set of short names whose layer is missing."""
    problems = []
    links = {}
    dangling = set()
    link_dir = os.path.join(home, LINK_DIR)
    for short in _list_dir(link_dir):
        path = os.path.join(link_dir, short)
        try:
            target = os.readlink(path)
        except OSError:
            problems.append(
                problem(None, "store_link", path, "a link to ../<layer id>/diff", "not a link")
            )
            continue
        parts = target.split("/")
        if len(parts) != 3 or parts[0] != ".." or parts[2] != "diff" or not parts[1]:
            problems.append(
                problem(
                    None, "store_link", path, "a link to ../<layer id>/diff", "a link to " + target
                )
            )
            continue
        links[short] = parts[1]
        if parts[1] not in layer_ids or not os.path.isdir(os.path.join(home, parts[1], "diff")):
            dangling.add(short)
            problems.append(
                problem(
                    None,
                    "store_link",
                    path,
                    "a link to the diff directory of an existing layer",
                    "a dangling link to %s (no layer directory %s)" % (target, parts[1]),
                )
            )
    return problems, links, dangling


def _check_layer(home, layer_id, links, dangling):
    """Problems of one layer directory: ``diff/`` present, ``link`` names its own ``l/`` entry,
    every entry of ``lower`` names an ``l/`` link to an existing layer."""
    problems = []
    base = os.path.join(home, layer_id)
    if not os.path.isdir(os.path.join(base, "diff")):
        problems.append(
            problem(None, "store_layer", os.path.join(base, "diff"), "a directory", "nothing")
        )
    link_file = os.path.join(base, "link")
    short = _read_text(link_file)
    if not short:
        problems.append(
            problem(None, "store_link_file", link_file, "the layer's short name", "nothing")
        )
    elif links.get(short) != layer_id:
        found = (
            "l/%s is missing" % short
            if short not in links
            else "l/%s links to layer %s" % (short, links[short])
        )
        problems.append(
            problem(
                None,
                "store_link_file",
                link_file,
                "l/%s linking to ../%s/diff" % (short, layer_id),
                found,
            )
        )
    lower_file = os.path.join(base, "lower")
    lower = _read_text(lower_file)
    if lower is not None:
        for entry in lower.split(":"):
            name = entry[len(LINK_DIR) + 1 :] if entry.startswith(LINK_DIR + "/") else None
            if name and name in links and name not in dangling:
                continue
            found = "%s, which does not exist" % (entry or "an empty entry")
            if name in dangling:
                found = "%s, a link to the missing layer %s" % (entry, links[name])
            problems.append(
                problem(
                    None,
                    "store_lower",
                    lower_file,
                    "l/<short> entries naming links to existing layers",
                    found,
                )
            )
    return problems


def _check_image_references(layerdb, home, cache_ids, layer_ids):
    """Problems of the image layers' ``cache-id`` files, each of which must name an existing
    layer directory. Returns ``(problems, referenced)``: ``referenced`` is the set of the
    cache-ids read (None for a missing or empty file)."""
    problems = []
    referenced = set()
    for chain_id, cache_id in sorted(cache_ids.items()):
        path = os.path.join(layerdb, "sha256", chain_id, "cache-id")
        referenced.add(cache_id)
        if not cache_id or cache_id not in layer_ids:
            problems.append(
                problem(
                    None,
                    "store_cache_id",
                    path,
                    "the id of a layer directory under %s" % home,
                    "%s, which does not exist" % (cache_id or "an empty file"),
                )
            )
    return problems, referenced


def _check_container_references(layerdb, home, mounts, layer_ids, known_containers, referenced):
    """Problems of the containers' ``mount-id`` and ``init-id`` files, each of which must name
    an existing layer directory, and of entries of containers the engine does not know (when
    ``known_containers`` is given). Adds the ids read to ``referenced``."""
    problems = []
    for container_id, ids in sorted(mounts.items()):
        for key in ("mount-id", "init-id"):
            layer_id = ids[key]
            referenced.add(layer_id)
            path = os.path.join(layerdb, "mounts", container_id, key)
            if not layer_id or layer_id not in layer_ids:
                problems.append(
                    problem(
                        container_id,
                        "store_mount_id",
                        path,
                        "the id of a layer directory under %s" % home,
                        "%s, which does not exist" % (layer_id or "nothing"),
                    )
                )
        if known_containers is not None and container_id not in known_containers:
            problems.append(
                problem(
                    container_id,
                    "store_mount_entry",
                    os.path.join(layerdb, "mounts", container_id),
                    "a container the engine knows",
                    "a leftover entry of an unknown container",
                )
            )
    return problems


def _record_orphaned_layers(report, home, orphan_ids, measure_orphans):
    """Add the layer directories nothing refers to, in id order, to ``report``'s
    ``orphaned_layers`` and their sizes (when measured) to its ``orphaned_bytes``."""
    for layer_id in sorted(orphan_ids):
        path = os.path.join(home, layer_id)
        size = disk_usage(path) if measure_orphans else None
        report["orphaned_layers"].append({"id": layer_id, "path": path, "size_bytes": size})
        report["orphaned_bytes"] += size or 0


def check_layer_store(data_root, known_containers=None, measure_orphans=True):
    """Check the overlay2 store under ``data_root`` and list its orphaned layer directories.

    ``known_containers``: ids of the containers the engine knows; when given, layerdb entries
    of other containers are reported. Returns a dict: ``checked``, ``reason`` (why not checked),
    ``path`` (the overlay2 home), ``layers``, ``links``, ``problems`` (the shape of
    ``_overlay_mounts.problem``), ``orphaned_layers`` (``id``, ``path``, ``size_bytes``) and
    ``orphaned_bytes``. Only directories named as the layer store names them can be orphaned:
    BuildKit's snapshots (build cache) live beside them under names of their own.
    """
    home = os.path.join(data_root, "overlay2")
    report = {
        "checked": False,
        "reason": None,
        "path": home,
        "layers": 0,
        "links": 0,
        "problems": [],
        "orphaned_layers": [],
        "orphaned_bytes": 0,
    }
    if not os.path.isdir(home):
        report["reason"] = "%s does not exist: this data-root has no overlay2 store" % home
        return report
    # Only directories: on xfs with quota the home also holds a device node, backingFsBlockDev.
    layer_ids = {
        name
        for name in _list_dir(home)
        if name != LINK_DIR and os.path.isdir(os.path.join(home, name))
    }
    problems, links, dangling = _check_short_links(home, layer_ids)
    for layer_id in sorted(layer_ids):
        problems.extend(_check_layer(home, layer_id, links, dangling))

    cache_ids, mounts = read_layerdb_references(data_root)
    layerdb = os.path.join(data_root, "image", "overlay2", "layerdb")
    image_problems, referenced = _check_image_references(layerdb, home, cache_ids, layer_ids)
    problems.extend(image_problems)
    problems.extend(
        _check_container_references(layerdb, home, mounts, layer_ids, known_containers, referenced)
    )

    orphans = {name for name in layer_ids - referenced if is_layer_store_name(name)}
    _record_orphaned_layers(report, home, orphans, measure_orphans)
    report.update(checked=True, layers=len(layer_ids), links=len(links), problems=problems)
    return report


_LAYER_STORE_NAME = re.compile(r"[0-9a-f]{64}(-init)?")


def is_layer_store_name(name):
    """Whether ``name`` is how dockerd's layer store names a layer directory (64 hex digits,
    ``-init`` for a container's init layer). BuildKit's snapshots, which the builder keeps in
    the same directory under names of its own, are not."""
    return bool(_LAYER_STORE_NAME.fullmatch(name))
