# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reclaim: give bytes and inodes back on the data-root's filesystem (and containerd's root)
by policy, one object at a time, until the targets hold.

``run`` reads the state once, plans (check mode stops there) and removes each planned object
through the engine, which refuses anything a container uses; an orphaned layer directory is
proven unreferenced again just before it goes. After each object the filesystems are measured
with statvfs, and the run stops as soon as the targets hold: what was freed is measured, never
estimated.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from urllib.parse import quote

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _containerd,
    _engine_lock,
    _engine_state,
    _mountinfo,
    _reclaim_inventory,
    _reclaim_policy,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    EngineClient,
    EngineError,
    EngineNotFound,
    EngineUnavailable,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError


class ReclaimError(StorageError):
    """Reclaim cannot start; nothing was removed."""


def _filesystems(data_root, containerd_root):
    """role -> (path, device) of the filesystems reclaim judges: the data-root's, and
    containerd's root when it exists on another filesystem."""
    found = {"data_root": (data_root, os.stat(data_root).st_dev)}
    if containerd_root and os.path.isdir(containerd_root):
        device = os.stat(containerd_root).st_dev
        if device != found["data_root"][1]:
            found["containerd_root"] = (containerd_root, device)
    return found


def measure_filesystems(filesystems):
    """role -> state (``_reclaim_policy.filesystem_state``), from statvfs now."""
    return {
        role: _reclaim_policy.filesystem_state(role, path, os.statvfs(path))
        for role, (path, _device) in filesystems.items()
    }


# ---- what the run stands on ---------------------------------------------------------------


def _engine(params):
    try:
        client = EngineClient(params["docker_host"], timeout=params.get("timeout") or 60)
    except ValueError as exc:
        raise ReclaimError("docker_host: %s" % exc) from None
    try:
        info, _engine, client = _engine_state.detect_engine(params["docker_host"], client=client)
    except EngineUnavailable as exc:
        raise ReclaimError("the engine does not answer: %s; nothing was removed" % exc) from None
    if client is None or not info.get("data_root"):
        raise ReclaimError(
            "the engine on %s does not answer (%s): reclaim removes only through the engine; "
            "start it or give docker_host. Nothing was removed"
            % (params["docker_host"], info.get("problem") or "no data-root reported")
        )
    return info, client


def _roots(params, system):
    """``(data_root, store_root)``: the data-root (given or the engine's) and where the
    engine keeps its objects (the remapped root under userns-remap)."""
    engine_root = _engine_state.engine_data_root(system)
    data_root = params.get("data_root") or engine_root
    if not os.path.isabs(data_root):
        raise ReclaimError("data_root is %r: give an absolute path" % data_root)
    if not os.path.isdir(data_root):
        raise ReclaimError(
            "data_root %s does not exist: give the engine's data-root (it reports %s)"
            % (data_root, engine_root or "none")
        )
    if engine_root and os.path.realpath(data_root) != os.path.realpath(engine_root):
        raise ReclaimError(
            "data_root is %s but the engine on %s keeps its data in %s: reclaim only removes "
            "what the engine in front of it owns; give that engine's socket or data-root"
            % (data_root, params["docker_host"], engine_root)
        )
    return data_root, os.path.normpath(system.get("DockerRootDir") or data_root)


def prepare(params, now=None):
    """Everything a run needs, read once: ``policy``, ``client``, ``filesystems``,
    ``before`` (their states), ``candidates`` and facts about the engine. Raises
    ReclaimPolicyError or ReclaimError, having removed nothing."""
    policy = _reclaim_policy.read_policy(params)
    info, client = _engine(params)
    system = client.info()
    data_root, store_root = _roots(params, system)
    containerd_store = _engine_state.uses_containerd_store(info)
    containerd_root = params.get("containerd_root")
    if containerd_root and not os.path.isdir(containerd_root):
        raise ReclaimError(
            "containerd_root %s is not a directory: give the root of the containerd that keeps "
            "the engine's images, or leave it out" % containerd_root
        )
    if containerd_store and not containerd_root:
        containerd_root = _containerd.containerd_store(data_root).root
    filesystems = _filesystems(data_root, containerd_root)
    # On the containerd image store, images, containers and build cache free space where
    # containerd keeps its snapshots: its own filesystem, or the data-root's when it is on it.
    image_filesystem = "data_root"
    if containerd_store and "containerd_root" in filesystems:
        image_filesystem = "containerd_root"
    try:
        inventory = _reclaim_inventory.read_inventory(
            client, policy["steps"], info.get("api_version")
        )
    except EngineUnavailable as exc:
        raise ReclaimError("the engine stopped answering: %s; nothing was removed" % exc) from None
    inventory["store_root"] = store_root
    overlay = info.get("running_driver") == "overlay2" and not containerd_store
    layout = _reclaim_inventory.StoreLayout(store_root) if overlay else None
    mounts = _mountinfo.read_mount_table(params.get("mountinfo_path") or "/proc/self/mountinfo")
    candidates = _reclaim_inventory.Candidates(
        inventory, policy, time.time() if now is None else now, layout, mounts, image_filesystem
    )
    return {
        "policy": policy,
        "client": client,
        "engine": {
            "version": info.get("version"),
            "driver": info.get("running_driver"),
            "image_store": "containerd" if containerd_store else "graphdriver",
        },
        "data_root": data_root,
        "store_root": store_root,
        "filesystems": filesystems,
        "before": measure_filesystems(filesystems),
        "candidates": candidates,
        "layout": layout,
        "api_version": info.get("api_version"),
        "mountinfo_path": params.get("mountinfo_path") or "/proc/self/mountinfo",
    }


# ---- removing one object ------------------------------------------------------------------


def _filters(filters):
    return quote(json.dumps(filters, separators=(",", ":")))


def _remove_build_cache(run, candidate):
    answer = run["client"].call(
        "POST", "/build/prune?all=1&filters=" + _filters({"id": [candidate["id"]]})
    )
    deleted = (answer or {}).get("CachesDeleted") or []
    if candidate["id"] not in deleted:
        return "the engine did not remove it (in use, or shared with an image)"
    return None


def _remove_image(run, candidate):
    """Remove an image by each of its tags (by its id when it has none), once it is proven
    again that its tags are those it was chosen with and that no container uses it: the
    engine refuses to remove an image a container uses, but not to untag it."""
    image = run["client"].get("/images/%s/json" % candidate["id"])
    tags = _reclaim_inventory.image_tags(image)
    if tags != candidate["tags"]:
        return "its tags changed since it was chosen (%s)" % (", ".join(tags) or "none")
    for container in run["client"].get("/containers/json?all=1") or []:
        if container.get("ImageID") == candidate["id"]:
            return "a container uses it now (%s)" % ", ".join(container.get("Names") or [])
    for reference in tags or [candidate["id"]]:
        run["client"].call("DELETE", "/images/%s?noprune=1" % quote(reference, safe=""))
    return None


def _remove_container(run, candidate):
    run["client"].call(
        "DELETE", "/containers/%s?v=0&force=0" % candidate["id"], ok_statuses=(200, 204)
    )
    return None


def _remove_volume(run, candidate):
    run["client"].call(
        "DELETE", "/volumes/%s" % quote(candidate["id"], safe=""), ok_statuses=(200, 204)
    )
    return None


def _truncate_log(run, candidate):
    container = run["client"].get("/containers/%s/json" % candidate["id"])
    path = _reclaim_inventory.log_path(container, run["store_root"])
    if not path:
        return "its log is no longer the engine's json-file log under the data-root"
    for file_path, _info in _reclaim_inventory.log_files(path):
        fd = os.open(file_path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)
    return None


def _remove_layer(run, candidate):
    """Remove an orphaned layer directory and its short links, after proving once more, from
    a fresh read of the store, the engine and the mount table, that nothing names it."""
    layout = _reclaim_inventory.StoreLayout(run["store_root"])
    fresh = _reclaim_inventory.Candidates(
        _reclaim_inventory.read_inventory(run["client"], ("build_cache",), run["api_version"]),
        run["policy"],
        time.time(),
        layout,
        _mountinfo.read_mount_table(run["mountinfo_path"]),
    )
    if candidate["id"] not in fresh.orphaned_layers():
        return "no longer orphaned: something names it now"
    path = os.path.join(layout.home, candidate["id"])
    if not os.path.isdir(path) or os.path.islink(path):
        return "no longer a directory"
    for mount in _mountinfo.read_mount_table(run["mountinfo_path"]):
        if _mountinfo.is_within(mount.mount_point, path):
            return "%s is mounted under it" % mount.mount_point
    for link in layout.links.get(candidate["id"], []):
        os.unlink(link)
    shutil.rmtree(path)
    return None


REMOVERS = {
    "build_cache": _remove_build_cache,
    "image": _remove_image,
    "container": _remove_container,
    "layer": _remove_layer,
    "log": _truncate_log,
    "volume": _remove_volume,
}


def remove(run, candidate):
    """Remove one candidate; None when it is gone, else why it stays (the engine's refusal
    included: it refuses whatever a container uses)."""
    try:
        return REMOVERS[candidate["kind"]](run, candidate)
    except EngineNotFound:
        return "already gone"
    except EngineError as exc:
        return "the engine refused: %s" % (exc.engine_message or exc)
    except OSError as exc:
        return "cannot be removed: %s" % exc


# ---- the run ------------------------------------------------------------------------------


def _summaries(states):
    return {role: _reclaim_policy.summary(state) for role, state in states.items()}


def _freed(before, after):
    return {
        role: {
            "bytes": after[role]["bytes_free"] - before[role]["bytes_free"],
            "inodes": after[role]["inodes_free"] - before[role]["inodes_free"],
        }
        for role in before
    }


def _object(candidate, reason=None):
    entry = {
        key: candidate[key] for key in ("kind", "id", "name", "bytes", "inodes", "age_seconds")
    }
    if reason:
        entry["reason"] = reason
    return entry


def _remove_in_turn(run, entry, candidates, current, chosen):
    """Remove ``candidates`` one by one into the step ``entry`` until the targets hold; the
    states after (measured after every object)."""
    policy = run["policy"]
    for candidate in candidates:
        if _reclaim_policy.targets_hold(current, policy):
            break
        if not _reclaim_policy.helps(current, candidate, policy):
            continue
        chosen.append(candidate)
        reason = remove(run, candidate)
        if reason:
            chosen.remove(candidate)
            entry["kept"].append(_object(candidate, reason))
        else:
            entry["removed"].append(_object(candidate))
            entry["expected_state"] = _reclaim_policy.credit(entry["expected_state"], candidate)
        current = measure_filesystems(run["filesystems"])
    return current


def _reclaim(run):
    """Walk the ladder for real: first the plan check mode shows, then, when the measured
    figures still fall short, every other candidate the policy allows, in ladder order.
    Returns ``(steps, after)``; an engine that stops answering ends the walk with
    ReclaimError (what was done is in its result)."""
    policy = run["policy"]
    planned, _reached, _next = _reclaim_policy.plan(run["before"], policy, run["candidates"])
    current = run["before"]
    chosen = []
    entries = {}
    rounds = [(entry["step"], entry["objects"]) for entry in planned]
    rounds += [(step, None) for step in policy["steps"]]
    for step, objects in rounds:
        if _reclaim_policy.targets_hold(current, policy):
            break
        entry = entries.setdefault(
            step, {"step": step, "removed": [], "kept": [], "expected_state": current, "freed": {}}
        )
        before = current
        candidates = run["candidates"](step, chosen) if objects is None else objects
        try:
            current = _remove_in_turn(run, entry, candidates, current, chosen)
        except EngineUnavailable as exc:
            raise ReclaimError(
                "the engine stopped answering during step %s: %s" % (step, exc),
                {"changed": bool(chosen), "steps": _finish(entries)},
            ) from None
        for role, freed in _freed(before, current).items():
            total = entry["freed"].setdefault(role, {"bytes": 0, "inodes": 0})
            total["bytes"] += freed["bytes"]
            total["inodes"] += freed["inodes"]
        entry["after"] = _summaries(current)
    return _finish(entries), current


def _finish(entries):
    """The step entries in ladder order, as the result shows them."""
    steps = []
    for step in _reclaim_policy.LADDER:
        if step in entries:
            entry = dict(entries[step])
            entry["expected"] = _summaries(entry.pop("expected_state"))
            steps.append(entry)
    return steps


def _check(run):
    """The plan on expected figures, in the shape of a real run's steps."""
    planned, _reached, _next = _reclaim_policy.plan(run["before"], run["policy"], run["candidates"])
    steps = [
        {
            "step": entry["step"],
            "removed": [_object(candidate) for candidate in entry["objects"]],
            "kept": [],
            "expected": entry["expected"],
        }
        for entry in planned
    ]
    after = run["before"]
    for entry in planned:
        for candidate in entry["objects"]:
            after = _reclaim_policy.credit(after, candidate)
    return steps, after


def reclaim(params, check_mode):
    """Run reclaim with a module's ``params``. Returns ``(result, failure)``: ``failure`` is
    the message the task fails with when the targets are not reached (None when they are).
    Raises StorageError (with ``result``) when it cannot start or the engine stops answering."""
    _reclaim_policy.read_policy(params)  # bad options are refused before waiting for the lock
    # A real run holds the engine lock from before it reads anything: a relocation that moves
    # the data-root meanwhile would make what it read stale. Check mode takes no lock.
    lock = None if check_mode else _engine_lock.hold_engine_lock(params, "reclaim")
    try:
        run = prepare(params)
        steps, after = _check(run) if check_mode else _reclaim(run)
    finally:
        if lock is not None:
            lock.release()
    policy = run["policy"]
    reached = _reclaim_policy.targets_hold(after, policy)
    ran = {entry["step"] for entry in steps}
    removed = sum(len(entry["removed"]) for entry in steps)
    result = {
        "changed": removed > 0,
        "reached": reached,
        "targets": {
            "free_bytes_percent": policy["target_free_bytes_percent"],
            "free_inodes_percent": policy["target_free_inodes_percent"],
        },
        "data_root": run["data_root"],
        "engine": run["engine"],
        "before": _summaries(run["before"]),
        "after": _summaries(after),
        "freed": _freed(run["before"], after),
        "steps": steps,
        "removed_objects": removed,
        "next_step": None,
    }
    failure = None
    if not reached:
        result["next_step"] = _next_step(policy, ran)
        failure = _reclaim_policy.unreachable_message(after, policy, result["next_step"])
    return result, failure


def _next_step(policy, ran):
    """The step that would have come next: the first of the ladder after the last one that
    ran which the policy leaves out, else the first left out anywhere."""
    last = max([_reclaim_policy.LADDER.index(step) for step in ran] or [-1])
    for step in _reclaim_policy.LADDER[last + 1 :]:
        if step not in policy["steps"]:
            return step
    return _reclaim_policy.next_disallowed_step(policy)


# ---- diff ---------------------------------------------------------------------------------


def _figures_lines(states):
    return [
        "%s %s: %d bytes free (%s%%), %d inodes free (%s%%)"
        % (
            role,
            state["path"],
            state["bytes_free"],
            state["bytes_free_percent"],
            state["inodes_free"],
            state["inodes_free_percent"],
        )
        for role, state in sorted(states.items())
    ]


def _object_line(step, entry):
    return "%s %s %s (%s): %s bytes, %s inodes" % (
        step,
        entry["kind"],
        entry["id"],
        entry["name"],
        "?" if entry["bytes"] is None else entry["bytes"],
        "?" if entry["inodes"] is None else entry["inodes"],
    )


def diff(result):
    """The diff of a run: the free figures, and the objects, before and after."""
    gone = [
        _object_line(entry["step"], item) for entry in result["steps"] for item in entry["removed"]
    ]
    return {
        "before_header": "docker storage of %s" % result["data_root"],
        "after_header": "docker storage of %s" % result["data_root"],
        "before": "\n".join(_figures_lines(result["before"]) + gone) + "\n",
        "after": "\n".join(_figures_lines(result["after"])) + "\n",
    }


# ---- what reclaim would free, for the audit ------------------------------------------------


def would_free(docker_host, targets):
    """What a run of reclaim with the default steps and ages would remove on the engine at
    ``docker_host``, to reach ``targets`` (``target_free_bytes_percent``,
    ``target_free_inodes_percent``): the ``reclaim`` part of the audit's facts. Reads only.
    """
    params = dict(targets, docker_host=docker_host)
    try:
        run = prepare(params)
        steps, after = _check(run)
    except StorageError as exc:
        return {"checked": False, "problem": str(exc)}
    policy = run["policy"]
    return {
        "checked": True,
        "problem": None,
        "targets": {
            "free_bytes_percent": policy["target_free_bytes_percent"],
            "free_inodes_percent": policy["target_free_inodes_percent"],
        },
        "reached": _reclaim_policy.targets_hold(after, policy),
        "removed_objects": sum(len(entry["removed"]) for entry in steps),
        "freed": _freed(run["before"], after),
        "steps": [
            {
                "step": entry["step"],
                "objects": len(entry["removed"]),
                "bytes": sum(o["bytes"] or 0 for o in entry["removed"]),
                "inodes": sum(o["inodes"] or 0 for o in entry["removed"]),
            }
            for entry in steps
        ],
        "next_step": None
        if _reclaim_policy.targets_hold(after, policy)
        else _next_step(policy, {entry["step"] for entry in steps}),
    }
