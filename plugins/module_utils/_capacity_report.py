# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The capacity_info report: the filesystems under the data-root (and containerd's root and
any other path), judged against the thresholds, with the breakdown and the target check.

``collect`` is the whole module; it reads the engine, the mount table and the trees and writes
nothing. The rules themselves (figures, thresholds, fit) are in ``_capacity``.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os

from ansible_collections.dockerhost.storage.plugins.module_utils import _capacity, _mountinfo
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_state import (
    EngineStateError,
    check_absolute_path,
    engine_in_force,
    uses_containerd_store,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._userns_remap import (
    remapped_root_name,
)

THRESHOLD_OPTIONS = tuple(_capacity.DEFAULT_THRESHOLDS)


def examined_path(value, option, mounts, must_exist=True):
    """``(real path, mount)`` of a path to examine; CapacityError naming the option when it is
    relative, missing, or on a pseudo filesystem. Without ``must_exist`` the nearest existing
    ancestor stands in for a path that does not exist yet."""
    try:
        path = check_absolute_path(value, option)
    except EngineStateError as exc:
        raise _capacity.CapacityError(str(exc)) from None
    if not must_exist:
        path = _mountinfo.nearest_existing_ancestor(path)
    elif not os.path.exists(path):
        raise _capacity.CapacityError(
            "%s %s does not exist; give an existing directory" % (option, path)
        )
    real = os.path.realpath(path)
    mount = _mountinfo.mount_for_path(mounts, real)
    problem = _capacity.pseudo_filesystem_problem(value, mount, option)
    if problem:
        raise _capacity.CapacityError(problem)
    return real, mount


def walk(path, top_layers=10, store=None):
    # Imported here: only breakdown and target walk a tree, and storage_facts, which asks for
    # neither, would compile it for nothing on every run (the target compiles from source).
    from ansible_collections.dockerhost.storage.plugins.module_utils._tree_usage import (
        tree_usage,
    )

    try:
        return tree_usage(path, top_layers=top_layers, store=store)
    except OSError as exc:
        raise _capacity.CapacityError("cannot walk %s: %s" % (path, exc.strerror or exc)) from None


def check_options(params):
    """The thresholds to apply; CapacityError naming the first bad option."""
    thresholds = _capacity.validate_thresholds({name: params[name] for name in THRESHOLD_OPTIONS})
    if params["top_layers"] < 0:
        raise _capacity.CapacityError("top_layers must be 0 or more, got %d" % params["top_layers"])
    if params["margin_percent"] < 0:
        raise _capacity.CapacityError(
            "margin_percent must be 0 or more, got %s" % params["margin_percent"]
        )
    if params["data_root"]:
        try:
            given = check_absolute_path(params["data_root"], "data_root")
        except EngineStateError as exc:
            raise _capacity.CapacityError(str(exc)) from None
        if os.path.exists(given) and not os.path.isdir(given):
            raise _capacity.CapacityError(
                "data_root %s is not a directory; give the data-root directory" % given
            )
    return thresholds


def containerd_root_to_examine(params, containerd_store, warnings, partial=False):
    """``(root, source)`` of containerd's root to report, or ``(None, None)``. With ``partial``
    a ``containerd_root`` option that is not a directory is left out too."""
    if params["containerd_root"]:
        if partial and not os.path.isdir(params["containerd_root"]):
            return None, None
        return params["containerd_root"], "option"
    root, source = _capacity.read_containerd_root(params["containerd_config"])
    if os.path.isdir(root):
        return root, source
    if containerd_store:
        warnings.append(
            "the engine keeps images in the containerd image store, but containerd's root %s "
            "(from %s) is not a directory; give containerd_root" % (root, source)
        )
    return None, None


def target_report(params, mounts, thresholds, data_root_entry, used):
    """The ``target`` result: would ``used`` (bytes and inodes) fit on the target's filesystem."""
    checked, mount = examined_path(params["target"], "target", mounts, must_exist=False)
    entry = _capacity.examine_filesystem(checked, "target", mount, mounts, thresholds)
    inodes = entry["inodes"]
    report = {
        "path": os.path.normpath(params["target"]),
        "checked_path": checked,
        "filesystem": entry,
        "same_filesystem": entry["device_number"] == data_root_entry["device_number"],
        "used": used,
    }
    report.update(
        _capacity.fit_on_target(
            used["bytes"],
            used["inodes"],
            entry["bytes"]["available"],
            inodes["free"] if inodes["limited"] else None,
            params["margin_percent"],
        )
    )
    return report


def describe(entry, reasons):
    return "%s (%s on %s): %s" % (entry["path"], entry["fstype"], entry["mount_point"], reasons)


def threshold_failure(result):
    """The message of a task that fails on the fail threshold, naming each failing filesystem."""
    failing = [
        describe(entry, "; ".join(entry["reasons"]))
        for entry in result["filesystems"]
        if entry["status"] == "fail"
    ]
    return "below the fail threshold: " + " | ".join(failing)


def examine_filesystems(
    params, data_root, data_root_source, mounts, thresholds, containerd, partial=False
):
    """``(filesystems, real data-root, problem)``: the data-root's filesystem first, then
    containerd's root (``containerd`` is its ``(root, source)``, root None to leave it out),
    then each of ``paths``.

    A path that cannot be examined raises CapacityError; with ``partial`` it ends the list
    instead, and ``problem`` says why (a data-root that is not a directory is left out, real
    data-root None). Without ``partial`` the problem is None."""
    candidates = [(containerd[0], "containerd_root", "containerd_root")] if containerd[0] else []
    candidates += [(value, "path", "paths") for value in params["paths"]]
    problem = None
    if partial and not os.path.isdir(data_root):
        problem = "the data-root %s does not exist" % data_root
    elif data_root_source != "option" and not os.path.isdir(data_root):
        raise _capacity.CapacityError(
            "the data-root %s (from %s) does not exist; is Docker installed? Give data_root"
            % (data_root, data_root_source)
        )
    else:
        candidates.insert(0, (data_root, "data_root", "data_root"))
    filesystems = []
    try:
        for value, role, option in candidates:
            real, mount = examined_path(value, option, mounts)
            filesystems.append(_capacity.examine_filesystem(real, role, mount, mounts, thresholds))
    except _capacity.CapacityError as exc:
        if not partial:
            raise
        problem = str(exc)
    real_root = None
    if filesystems and filesystems[0]["role"] == "data_root":
        real_root = filesystems[0]["path"]
    return filesystems, real_root, problem


def usage_and_target(params, mounts, thresholds, filesystems, containerd, store):
    """``(breakdown, target)``: the data-root's tree when either is asked for, and whether what
    a move takes along would fit on ``target``; None for what is not asked for.

    ``containerd`` is ``(containerd root or None, whether the images live there)``; ``store``
    the remapped root's name (``<uid>.<gid>``) under userns-remap, where the layers are."""
    if not (params["breakdown"] or params["target"]):
        return None, None
    containerd_root, containerd_store = containerd
    usage = walk(filesystems[0]["path"], params["top_layers"], store)
    target = None
    if params["target"]:
        used = {"bytes": usage["bytes"], "inodes": usage["inodes"]}
        if containerd_store and containerd_root:
            # Images live there on the containerd image store; a move takes them along.
            extra = walk(containerd_root, 0)
            used = {key: used[key] + extra[key] for key in used}
        target = target_report(params, mounts, thresholds, filesystems[0], used)
    return (usage if params["breakdown"] else None), target


def _image_store(engine_info, containerd_store):
    """The image store in use, ``containerd`` or ``graphdriver``, when the engine answered
    (``version_source`` api); else None."""
    return (
        ("containerd" if containerd_store else "graphdriver")
        if engine_info["version_source"] == "api"
        else None
    )


def _overall_status(filesystems):
    """The worst status of the filesystems examined, or None when none was."""
    return (
        _capacity.worst_status([entry["status"] for entry in filesystems]) if filesystems else None
    )


def collect(params, state=None, mounts=None, partial=False):
    """``(result, warnings)`` of capacity_info for ``params`` (the module options). Raises
    CapacityError or EngineStateError with a message that names the option or path.

    ``state`` (an ``_engine_state.EngineInForce``) and ``mounts`` (the parsed mount table) are
    what a caller read already; they are read here when None. ``partial`` is storage_facts's
    view: a data-root or ``containerd_root`` that is not a directory is left out, a path that
    cannot be examined ends the list, and the result's ``problem`` (a key only then) says why;
    ``status`` is null when nothing was examined. It goes without ``breakdown`` and ``target``.
    """
    thresholds = check_options(params)
    if state is None:
        state = engine_in_force(params["docker_host"], params["config_path"], params["data_root"])
    warnings = list(state.warnings)
    engine_info = state.engine_info
    if mounts is None:
        mounts = _mountinfo.read_mount_table()
    containerd_store = uses_containerd_store(engine_info)
    containerd = containerd_root_to_examine(params, containerd_store, warnings, partial)
    filesystems, real_root, problem = examine_filesystems(
        params, state.data_root, state.data_root_source, mounts, thresholds, containerd, partial
    )
    # As examined_path makes it: normalised, then its symbolic links resolved.
    containerd_root = os.path.realpath(os.path.normpath(containerd[0])) if containerd[0] else None
    breakdown, target = usage_and_target(
        params,
        mounts,
        thresholds,
        filesystems,
        (containerd_root, containerd_store),
        remapped_root_name(engine_info, state.settings),
    )
    result = {
        "data_root": real_root,
        "data_root_source": state.data_root_source,
        "containerd_root": containerd_root,
        "containerd_root_source": containerd[1] if containerd_root else None,
        "image_store": _image_store(engine_info, containerd_store),
        "engine": {
            "version": engine_info["version"],
            "running_driver": engine_info["running_driver"],
            "problem": engine_info["problem"],
        },
        "filesystems": filesystems,
        "status": _overall_status(filesystems),
        "reasons": [
            describe(entry, reason) for entry in filesystems for reason in entry["reasons"]
        ],
        "thresholds": thresholds,
        "breakdown": breakdown,
        "target": target,
    }
    if partial:
        result["problem"] = problem
    return result, warnings
