# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mounts_info report: every container's storage as the engine sees it, checked against the
kernel's mount table and the layer store, with summary counts.

``collect`` is the whole module: it reads the Engine API (list and inspect), the mount table
and the data-root, and writes nothing unless the probe is asked for (a short-lived container,
``_container_probe``). Private to the dockerhost.storage collection: the API may change without
notice.
"""

from __future__ import annotations

import os
import re

from ansible_collections.dockerhost.storage.plugins.module_utils import _aufs, _overlay_mounts
from ansible_collections.dockerhost.storage.plugins.module_utils._container_mounts import (
    host_mount_findings,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._container_probe import run_probe
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    ContainerEngineClient,
    EngineError,
    EngineNotFound,
    socket_path_from_docker_host,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_state import (
    EngineStateError,
    detect_engine,
    resolve_data_root,
    uses_containerd_store,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError
from ansible_collections.dockerhost.storage.plugins.module_utils._layer_store import (
    check_layer_store,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import read_mount_table

# The first absolute path in an engine error, such as "readlink /var/lib/docker/overlay2/l/X: ...".
_FIRST_PATH = re.compile(r"(?<![\w.])/[^\s,;\"']+")


class ContainerSelectionError(StorageError):
    """A name or id in the ``containers`` option matches no container of the engine."""


def container_name(summary):
    """The name of a container from /containers/json (``Names`` start with ``/``)."""
    names = summary.get("Names") or []
    return names[0].lstrip("/") if names else summary.get("Id", "")[:12]


def select_containers(listing, wanted):
    """The containers of ``listing`` named (or with an id starting with) an entry of ``wanted``;
    all of them when ``wanted`` is empty. Raises ContainerSelectionError naming what matched
    nothing."""
    if not wanted:
        return list(listing)
    chosen, missing = [], []
    for entry in wanted:
        matches = [
            c
            for c in listing
            if container_name(c) == entry.lstrip("/")
            or (len(entry) >= 4 and c.get("Id", "").startswith(entry))
        ]
        if not matches:
            missing.append(entry)
        chosen.extend(c for c in matches if c not in chosen)
    if missing:
        raise ContainerSelectionError(
            "containers: the engine has no container named %s (nor with such an id); "
            "docker ps -a lists them" % ", ".join(repr(m) for m in missing)
        )
    return chosen


def uninspectable_container(summary, message):
    """The report entry of a container the engine failed to inspect (``message`` says why)."""
    name = container_name(summary)
    path = _FIRST_PATH.search(message)
    running = summary.get("State") in ("running", "paused")
    return {
        "id": summary.get("Id"),
        "name": name,
        "state": summary.get("State"),
        "running": running,
        "driver": None,
        "status": "problems",
        "reason": None,
        "merged_dir": None,
        "mounted": None,
        "layers": None,
        "relative_paths": None,
        "options": {},
        "problems": [
            _overlay_mounts.problem(
                name,
                "engine_inspect",
                path.group(0).rstrip(":") if path else None,
                "the engine describes the container's layers",
                message,
            )
        ],
        # The engine could not describe it: its mounts are not known either.
        "host_mounts": [],
    }


def check_container(
    inspection, name, mounts_at, data_root, host_root="/", containerd_store=False, sockets=()
):
    """Check one inspected container; return its entry of the report's ``containers`` list.

    ``containerd_store``: the engine keeps images in containerd (its /info says so);
    ``sockets``: the engine's and containerd's sockets, for ``host_mounts``.
    """
    state = inspection.get("State") or {}
    running = bool(state.get("Running"))
    driver, data, reason = _overlay_mounts.graphdriver_layout(inspection, containerd_store)
    entry = {
        "id": inspection.get("Id"),
        "name": name,
        "state": state.get("Status"),
        "running": running,
        "driver": driver,
        "status": "not_checked",
        "reason": None,
        "merged_dir": None,
        "mounted": None,
        "layers": None,
        "relative_paths": None,
        "options": {},
        "problems": [],
        "host_mounts": host_mount_findings(name, inspection.get("Mounts"), sockets),
    }
    if driver == "aufs":
        problems, details = _aufs.check_aufs_container(
            entry["id"], data_root, running, mounts_at, host_root
        )
        for item in problems:
            item["container"] = name
        entry.update(details, problems=problems)
    elif data is None:
        entry["reason"] = reason
        return entry
    elif driver != "overlay2":
        entry["reason"] = "storage driver %s keeps no overlay mounts to check" % driver
        return entry
    else:
        entry["merged_dir"] = data.get("MergedDir")
        if running:
            # The overlay2 home from the engine's own paths: <home>/<id>/merged.
            home = os.path.dirname(os.path.dirname(data.get("MergedDir") or ""))
            problems, details = _overlay_mounts.check_running_container(name, data, mounts_at, home)
            entry.update(details)
        else:
            problems = _overlay_mounts.check_stopped_container(name, data)
        entry["problems"] = problems
    entry["status"] = "problems" if entry["problems"] else "ok"
    return entry


def summarise(containers, store, probe):
    """Summary counts and the overall ``ok`` (no problem found anywhere that was checked)."""
    summary = {
        "containers": len(containers),
        "running": sum(1 for c in containers if c["running"]),
        "ok": sum(1 for c in containers if c["status"] == "ok"),
        "with_problems": sum(1 for c in containers if c["status"] == "problems"),
        "not_checked": sum(1 for c in containers if c["status"] == "not_checked"),
        "problems": sum(len(c["problems"]) for c in containers),
        "store_problems": len(store["problems"]),
        "orphaned_layers": len(store["orphaned_layers"]),
        "probe_problems": len(probe.get("problems") or []),
    }
    ok = not (summary["problems"] or summary["store_problems"] or summary["probe_problems"])
    return summary, ok


def build_report(
    client,
    data_root,
    mounts,
    wanted=None,
    check_store=False,
    host_root="/",
    containerd_store=False,
    sockets=(),
):
    """Everything mounts_info returns except the engine facts and the probe.

    ``client`` is a ContainerEngineClient, ``mounts`` the parsed mountinfo (a list of
    ``_mountinfo.Mount``), ``wanted`` the ``containers`` option. Returns a dict with
    ``containers``, ``problems`` (all container and store problems in one list) and ``store``.
    """
    listing = client.containers()
    mounts_at = _overlay_mounts.mounts_by_point(mounts)
    containers = []
    for summary in select_containers(listing, wanted):
        try:
            inspection = client.inspect_container(summary["Id"])
        except EngineNotFound:
            continue  # removed between the listing and the inspection
        except EngineError as exc:
            # dockerd cannot describe a container whose layer chain is broken (it reads the
            # lower file and every l/ link to answer): that is a finding, not a failure.
            containers.append(uninspectable_container(summary, exc.engine_message or str(exc)))
            continue
        containers.append(
            check_container(
                inspection,
                container_name(summary),
                mounts_at,
                data_root,
                host_root,
                containerd_store,
                sockets,
            )
        )
    if check_store:
        store = check_layer_store(data_root, known_containers={c.get("Id") for c in listing})
    else:
        store = {
            "checked": False,
            "reason": "check_store is false",
            "path": os.path.join(data_root, "overlay2"),
            "layers": 0,
            "links": 0,
            "problems": [],
            "orphaned_layers": [],
            "orphaned_bytes": 0,
        }
    problems = [p for c in containers for p in c["problems"]] + store["problems"]
    return {"containers": containers, "problems": problems, "store": store}


def answering_engine(docker_host, timeout):
    """The Engine API client and the engine facts; EngineStateError when it does not answer."""
    try:
        client = ContainerEngineClient(docker_host, timeout=timeout)
    except ValueError as exc:
        raise EngineStateError(str(exc)) from None
    info, _version, answered = detect_engine(docker_host, client=client)
    if answered is None:
        raise EngineStateError("mounts_info needs the Engine API: %s" % info["problem"])
    return client, info


def collect(params, check_mode=False, engine=None, mounts=None, sockets=None):
    """The whole report for ``params`` (the module options); raises EngineStateError,
    EngineUnavailable, ContainerSelectionError, ProbeError or OSError with a message to show.

    What a caller has already is not asked again: ``engine`` is ``(client, engine facts)`` of
    an engine that answered (a ContainerEngineClient and ``detect_engine``'s facts),
    ``mounts`` the parsed mount table, ``sockets`` the sockets a container must not mount
    (``host_mounts``; by default the one of ``docker_host``)."""
    client, info = engine or answering_engine(params["docker_host"], params["timeout"])
    data_root, _source = resolve_data_root(params["data_root"], info, {})
    # Under userns-remap the engine keeps its layers in <data-root>/<uid>.<gid>.
    store_root = (
        os.path.join(data_root, info["remapped_root"]) if info["remapped_root"] else data_root
    )
    path = params["mountinfo_path"]
    if mounts is None:
        mounts = read_mount_table(path)
    if sockets is None:
        sockets = (socket_path_from_docker_host(params["docker_host"]),)
    containerd_store = uses_containerd_store(info)
    report = build_report(
        client,
        store_root,
        mounts,
        wanted=params["containers"],
        check_store=params["check_store"],
        containerd_store=containerd_store,
        sockets=sockets,
    )
    probe = {"attempted": False, "ok": None, "skipped_reason": "probe is false", "problems": []}
    if params["probe"] and check_mode:
        probe["skipped_reason"] = "check mode: the probe would create a container"
    elif params["probe"]:
        probe = run_probe(client, params["probe_image"], mountinfo_path=path)
        probe["skipped_reason"] = None
    summary, ok = summarise(report["containers"], report["store"], probe)
    report.update(
        ok=ok,
        summary=summary,
        probe=probe,
        data_root=data_root,
        engine={
            "version": info["version"],
            "api_version": info["api_version"],
            "driver": info["running_driver"],
            "image_store": "containerd" if containerd_store else "graphdriver",
        },
    )
    return report


def describe_problems(result, limit=5):
    """A one-line account of the first problems, for a failure message."""
    lines = [
        "%s%s: expected %s, found %s"
        % (
            "%s: " % p["container"] if p["container"] else "",
            p["path"] or "(no path)",
            p["expected"],
            p["found"],
        )
        for p in result["problems"]
    ] + ["probe: %s" % text for text in result["probe"].get("problems") or []]
    more = len(lines) - limit
    return "; ".join(lines[:limit]) + ("; and %d more" % more if more > 0 else "")
