# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Overlay mounts as the kernel shows them, compared with what the engine believes.

Pure functions over ``_mountinfo.Mount`` records and the Engine API's container inspection;
the only live reads are of the layer store (``readlink``, ``isdir``), through functions that
can be swapped in tests.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os
import re

# The kernel refuses more lower layers than this (OVL_MAX_STACK); dockerd stops at 125 per chain
# ("max depth exceeded"): an image of 125 layers runs, but nothing can be built on it.
MAX_LOWER_LAYERS = 128
MAX_CHAIN_LAYERS = 125

# Options whose values are paths: a comma inside such a value is part of the path.
_PATH_OPTIONS = ("lowerdir", "lowerdir+", "datadir+", "upperdir", "workdir")
_OPTION_START = re.compile(r"^([a-z_]+\+?)(=|$)")
_ESCAPED = re.compile(r"\\(.)")
# ":" separates layers in lowerdir unless escaped with a backslash.
_LAYER_SEPARATOR = re.compile(r"(?<!\\):")


def split_overlay_options(super_options):
    """Split overlay super options into ``(key, value)`` pairs in order; flags get None.

    Keys may repeat (``lowerdir+`` once per layer on kernels 6.8 and later). A comma that
    mountinfo showed escaped (``\\054``, already decoded by ``_mountinfo``) or that the caller
    escaped as ``\\,`` stays inside the path it belongs to.
    """
    pairs = []
    for fragment in re.split(r"(?<!\\),", super_options):
        match = _OPTION_START.match(fragment)
        if pairs and pairs[-1][0] in _PATH_OPTIONS and (match is None or not fragment):
            key, value = pairs[-1]
            pairs[-1] = (key, value + "," + fragment)
            continue
        if not fragment:
            continue
        key, sep, value = fragment.partition("=")
        pairs.append((key, value if sep else None))
    return pairs


def split_lowerdir(value):
    """``/a:/b\\:c`` -> ``["/a", "/b:c"]``: layers topmost first, backslash escapes undone."""
    if not value:
        return []
    return [_ESCAPED.sub(r"\1", part) for part in _LAYER_SEPARATOR.split(value) if part]


def parse_overlay_options(super_options):
    """The layout of one overlay mount from its super options.

    Returns a dict: ``lowerdirs`` (topmost first, as the kernel shows them, possibly relative),
    ``datadirs``, ``upperdir``, ``workdir`` (None when absent), ``lowerdir_form``
    (``lowerdir`` or ``lowerdir+``), and ``options``: every other option (``index``,
    ``userxattr``, ``redirect_dir``, ``metacopy``, ``xino``, ...) with its value, or True for a
    flag.
    """
    layout = {
        "lowerdirs": [],
        "datadirs": [],
        "upperdir": None,
        "workdir": None,
        "lowerdir_form": "lowerdir",
        "options": {},
    }
    for key, value in split_overlay_options(super_options):
        if key == "lowerdir":
            layout["lowerdirs"].extend(split_lowerdir(value))
        elif key == "lowerdir+":
            # One layer per entry, already unescaped by the kernel: no ":" splitting.
            layout["lowerdirs"].append(value or "")
            layout["lowerdir_form"] = "lowerdir+"
        elif key == "datadir+":
            layout["datadirs"].append(value or "")
        elif key in ("upperdir", "workdir"):
            layout[key] = _ESCAPED.sub(r"\1", value or "")
        else:
            layout["options"][key] = True if value is None else value
    return layout


def resolve_layout(layout, overlay_home):
    """Make relative paths of a layout absolute against ``overlay_home``.

    dockerd mounts with paths relative to ``<data-root>/overlay2`` (after a chdir there) when
    the absolute ones would not fit in one page of mount data; mountinfo then shows them
    relative. Returns a new dict with ``relative`` True when any path was relative.
    """

    def absolute(path):
        if path is None or os.path.isabs(path):
            return path
        return os.path.normpath(os.path.join(overlay_home, path))

    resolved = dict(layout)
    paths = layout["lowerdirs"] + layout["datadirs"] + [layout["upperdir"], layout["workdir"]]
    resolved["relative"] = any(p is not None and not os.path.isabs(p) for p in paths)
    resolved["lowerdirs"] = [absolute(p) for p in layout["lowerdirs"]]
    resolved["datadirs"] = [absolute(p) for p in layout["datadirs"]]
    resolved["upperdir"] = absolute(layout["upperdir"])
    resolved["workdir"] = absolute(layout["workdir"])
    return resolved


def overlay_mounts_by_point(mounts):
    """``{mount_point: Mount}`` for every overlay mount; the last one on a point is on top."""
    return {mount.mount_point: mount for mount in mounts if mount.fstype == "overlay"}


def mounts_by_point(mounts):
    """``{mount_point: Mount}`` for every mount; the last one on a point is on top."""
    return {mount.mount_point: mount for mount in mounts}


def graphdriver_layout(inspection, containerd_store=False):
    """The engine's storage view of a container from its inspection.

    Returns ``(driver, data, reason)``: the GraphDriver name and its Data dict
    (LowerDir, UpperDir, WorkDir, MergedDir), or ``data`` None with the reason they cannot be
    checked. On the containerd image store (``containerd_store``, or an inspection with
    ``Storage.RootFS.Snapshot`` and no GraphDriver data, as Docker 29 answers) the engine
    reports a snapshot, not directories.
    """
    graph = inspection.get("GraphDriver")
    graph = graph if isinstance(graph, dict) else {}
    storage = inspection.get("Storage")
    rootfs = storage.get("RootFS") if isinstance(storage, dict) else None
    snapshot = rootfs.get("Snapshot") if isinstance(rootfs, dict) else None
    snapshotter = snapshot.get("Name") if isinstance(snapshot, dict) else None
    driver = graph.get("Name") or snapshotter
    data = graph.get("Data")
    if data and isinstance(data, dict):
        return driver, data, None
    if containerd_store or snapshotter or not graph:
        return (
            driver,
            None,
            "the engine reports no layer directories for this container (containerd image "
            "store, snapshotter %s): its snapshot mounts are not checked" % (driver or "unknown"),
        )
    return driver, None, "the engine reports no layer directories for driver %s" % driver


def problem(container, check, path, expected, found):
    """One finding, in the shape every check of mounts_info returns."""
    return {
        "container": container,
        "check": check,
        "path": path,
        "expected": expected,
        "found": found,
    }


def _describe_link(path, readlink):
    try:
        return "a link to %s" % readlink(path)
    except FileNotFoundError:
        return "nothing (the link is missing)"
    except OSError as exc:
        return "an unreadable entry (%s)" % exc.strerror


def check_lower_link(container, path, overlay_home, realpath, isdir, readlink):
    """Problems of one lower layer path as mounted: an ``l/<short>`` link must resolve to an
    existing ``<overlay_home>/<id>/diff`` directory; other paths must be directories."""
    found = []
    is_short_link = os.path.dirname(path) == os.path.join(overlay_home, "l")
    target = realpath(path)
    if not isdir(target):
        expected = (
            "a link to ../<layer id>/diff of an existing layer"
            if is_short_link
            else "an existing layer directory"
        )
        shown = _describe_link(path, readlink) if is_short_link else "nothing there"
        found.append(problem(container, "lower_link", path, expected, shown))
    elif is_short_link and (
        os.path.basename(target) != "diff"
        or os.path.dirname(os.path.dirname(target)) != overlay_home
    ):
        found.append(
            problem(
                container,
                "lower_link",
                path,
                "a link to ../<layer id>/diff under %s" % overlay_home,
                "a link to %s" % target,
            )
        )
    return found


def _check_upper_and_work(container, data, layout, merged, realpath):
    """Problems of the mounted ``upperdir`` and ``workdir``: each must be the engine's
    UpperDir and WorkDir."""
    problems = []
    for key, name in (("UpperDir", "upperdir"), ("WorkDir", "workdir")):
        wanted = data.get(key)
        got = layout[name]
        if got is None or wanted is None or realpath(got) != realpath(wanted):
            problems.append(
                problem(
                    container,
                    name,
                    merged,
                    "%s=%s (the engine's %s)" % (name, wanted, key),
                    "%s=%s" % (name, got),
                )
            )
    return problems


def _check_lower_chain(container, data, layout, merged, realpath):
    """Problems of the mounted lower layers as a whole: they must be the engine's LowerDir,
    in its order, and no more than the kernel's MAX_LOWER_LAYERS."""
    problems = []
    engine_lowers = [realpath(p) for p in split_lowerdir(data.get("LowerDir") or "")]
    mounted_lowers = [realpath(p) for p in layout["lowerdirs"]]
    if engine_lowers != mounted_lowers:
        problems.append(
            problem(
                container,
                "lower_chain",
                merged,
                "lower layers %s (the engine's LowerDir)" % ":".join(engine_lowers),
                "lower layers %s" % ":".join(mounted_lowers),
            )
        )
    if len(layout["lowerdirs"]) > MAX_LOWER_LAYERS:
        problems.append(
            problem(
                container,
                "layer_count",
                merged,
                "at most %d lower layers" % MAX_LOWER_LAYERS,
                "%d lower layers" % len(layout["lowerdirs"]),
            )
        )
    return problems


def check_running_container(
    container,
    data,
    mounts_at,
    overlay_home,
    realpath=os.path.realpath,
    isdir=os.path.isdir,
    readlink=os.readlink,
):
    """Check a running overlay2 container against the kernel's mount table.

    ``data`` is GraphDriver.Data; ``mounts_at`` maps mount points to Mount records
    (``mounts_by_point``). Returns ``(problems, details)``; ``details`` has ``mounted``,
    ``layers`` (the number of lower layers mounted), ``relative_paths`` and ``options``.
    """
    details = {"mounted": False, "layers": None, "relative_paths": None, "options": {}}
    merged = data.get("MergedDir") or ""
    mount = mounts_at.get(merged) or mounts_at.get(realpath(merged))
    if mount is None or mount.fstype != "overlay":
        found = "no mount (the directory is a plain directory of its parent filesystem)"
        if mount is not None:
            found = "a %s mount of %s" % (mount.fstype, mount.source)
        return [problem(container, "merged_mount", merged, "an overlay mount", found)], details
    details["mounted"] = True
    layout = resolve_layout(parse_overlay_options(mount.super_options), overlay_home)
    details["layers"] = len(layout["lowerdirs"])
    details["relative_paths"] = layout["relative"]
    details["options"] = layout["options"]
    problems = _check_upper_and_work(container, data, layout, merged, realpath)
    for path in layout["lowerdirs"]:
        problems.extend(check_lower_link(container, path, overlay_home, realpath, isdir, readlink))
    problems.extend(_check_lower_chain(container, data, layout, merged, realpath))
    return problems, details


def check_stopped_container(container, data, isdir=os.path.isdir):
    """Problems of a container that is not running: its layer directories must exist
    (the upper layer, and every lower one), or it will not start again."""
    problems = []
    paths = [data.get("UpperDir")] + split_lowerdir(data.get("LowerDir") or "")
    for path in paths:
        if path and not isdir(path):
            problems.append(
                problem(container, "layer_dir", path, "an existing layer directory", "nothing")
            )
    return problems
