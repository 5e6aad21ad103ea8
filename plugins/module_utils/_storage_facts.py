# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to the dockerhost.storage collection: not a public API.

Composes what the read-only modules find (driver support, capacity, daemon.json, dockerd
flags, merged mounts, engine) into the single ``docker_storage`` fact that ``storage_facts``
returns. Driver support, capacity and mounts are the reports of driver_support_info,
capacity_info and mounts_info (``_driver_support_report``, ``_capacity_report``,
``_mounts_report``), given the engine state and the mount table read once here; a part that
cannot be read is reported with a ``problem`` sentence instead of failing the whole collection.
"""

from __future__ import annotations

import os

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _audit_policy,
    _audit_rules,
    _capacity,
    _capacity_report,
    _disk_users,
    _driver_support_report,
    _mountinfo,
    _reclaim,
    _userns_remap,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._daemon_files import (
    daemon_files,
    path_permissions,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._daemon_json import (
    DaemonJsonError,
    mode_problems,
    read_daemon_json,
    storage_settings,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._dockerd_flags import (
    config_file_problem,
    conflicts_with_config,
    find_storage_flags,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    ContainerEngineClient,
    EngineNotFound,
    EngineUnavailable,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_state import (
    EngineInForce,
    EngineStateError,
    detect_engine,
    resolve_data_root,
    uses_containerd_store,
)

# How many mount problems the fact carries in full; the summary counts them all.
MOUNT_PROBLEMS_KEPT = 20
# What the fact keeps of capacity_info's report.
CAPACITY_KEYS = (
    "status",
    "reasons",
    "thresholds",
    "containerd_root",
    "containerd_root_source",
    "filesystems",
    "problem",
)
# mounts_info's options as storage_facts runs it: every container, no store walk, no probe.
MOUNTS_OPTIONS = {
    "containers": None,
    "check_store": False,
    "probe": False,
    "probe_image": None,
    "mountinfo_path": "/proc/self/mountinfo",
}
# The images with the most layers the fact keeps, for the layer depth check.
DEEPEST_IMAGES_KEPT = 10


def docker_state(engine_info, data_root_exists):
    """``(state, reason)``: ``running`` when the Engine API answered, ``stopped`` when it did
    not but the data-root exists, ``absent`` when neither (Docker never ran here)."""
    if engine_info["version_source"] == "api":
        return "running", None
    problem = engine_info.get("problem") or "the Engine API did not answer"
    if data_root_exists:
        return "stopped", "the data-root exists but %s" % problem
    return "absent", "no data-root and %s" % problem


def daemon_json_facts(config_path):
    """``(settings_fact, config)``: the storage keys of daemon.json and the parsed file."""
    fact = {
        "path": config_path,
        "exists": os.path.exists(config_path),
        "problem": None,
        "mode_problems": mode_problems(config_path),
    }
    config = {}
    try:
        config = read_daemon_json(config_path)
        settings = storage_settings(config)
    except DaemonJsonError as exc:
        fact["problem"] = str(exc)
        settings = storage_settings({})
    fact.update(settings)
    return fact, config


def flag_facts(host_root, config, config_path):
    """The storage settings given as dockerd flags and their conflicts with daemon.json
    (``config``, read from ``config_path``); a ``--config-file`` flag naming another file
    than ``config_path`` is a conflict too."""
    found = find_storage_flags(host_root)
    found["conflicts"] = conflicts_with_config(found["findings"], config)
    problem = config_file_problem(found, config_path, host_root, "config_path")
    if problem:
        found["conflicts"].append(problem)
    return found


def capacity_fact(params, state, mounts, thresholds):
    """capacity_info's report (``_capacity_report.collect``, partial: a data-root or
    containerd root that is missing is left out, never an error) on the data-root's and
    containerd root's filesystems: ``{status, reasons, thresholds, containerd_root,
    containerd_root_source, filesystems, problem}``. ``state`` is the EngineInForce found."""
    options = dict(
        thresholds,
        data_root=params["data_root"],
        containerd_root=params["containerd_root"],
        containerd_config=params["containerd_config"],
        paths=[],
        breakdown=False,
        top_layers=0,
        target=None,
        margin_percent=0.0,
    )
    report, _warnings = _capacity_report.collect(options, state, mounts, partial=True)
    return {key: report[key] for key in CAPACITY_KEYS}


def deepest_images(client, keep=DEEPEST_IMAGES_KEPT):
    """The ``keep`` images with the most layers, deepest first: ``{image, id, layers}``, where
    ``image`` is its first tag (else its short id). An image removed meanwhile is left out."""
    found = []
    for summary in client.images():
        try:
            inspection = client.inspect_image(summary.get("Id", ""))
        except EngineNotFound:
            continue
        layers = ((inspection or {}).get("RootFS") or {}).get("Layers") or []
        tags = [tag for tag in summary.get("RepoTags") or [] if tag != "<none>:<none>"]
        short = summary.get("Id", "").split(":")[-1][:12]
        found.append({"image": tags[0] if tags else short, "id": short, "layers": len(layers)})
    found.sort(key=lambda entry: (-entry["layers"], entry["image"]))
    return found[:keep]


def mounts_fact(params, state, mounts, sockets):
    """mounts_info's report (``_mounts_report.collect``: no store walk, no probe) on the
    engine that answered (``state``, an EngineInForce): the summary, the first problems and
    what the containers' bind mounts expose of the host (``host_mounts``, ``sockets`` among
    it), with the deepest images; or a problem."""
    # Imported here: only a host whose engine answers needs it, and on a host without Docker
    # the target would compile these modules (and _aufs, _overlay_mounts, _layer_store) for
    # nothing on every run.
    from ansible_collections.dockerhost.storage.plugins.module_utils import _mounts_report

    options = dict(
        MOUNTS_OPTIONS,
        docker_host=params["docker_host"],
        timeout=params["timeout"],
        data_root=state.data_root,
    )
    try:
        client = ContainerEngineClient(params["docker_host"], timeout=params["timeout"])
        report = _mounts_report.collect(
            options, engine=(client, state.engine_info), mounts=mounts, sockets=sockets
        )
    except (ValueError, OSError, EngineUnavailable, EngineStateError) as exc:
        # EngineUnavailable covers the engine's error answers (EngineError) as well.
        return {"checked": False, "problem": str(exc)}
    fact = {
        "checked": True,
        "problem": None,
        "ok": report["ok"],
        "summary": report["summary"],
        "problems": report["problems"][:MOUNT_PROBLEMS_KEPT],
        "host_mounts": [
            finding for entry in report["containers"] for finding in entry["host_mounts"]
        ][:MOUNT_PROBLEMS_KEPT],
    }
    try:
        fact["deepest_images"] = deepest_images(client)
    except (ValueError, OSError, EngineUnavailable) as exc:
        # The layer depth check is skipped ("not examined"); the mounts stay checked.
        fact["images_problem"] = str(exc)
    return fact


def disk_users_fact(params, store_root):
    """The ``disk_users`` part of the fact: the biggest containers and images (``_disk_users``)
    of the engine ``params`` (the module options) name, their logs read under ``store_root``;
    or why they were not asked for."""
    top = params.get("disk_users", _disk_users.DEFAULT_TOP)
    if top == 0:
        return {"checked": False, "problem": "not asked for (disk_users: 0)"}
    client = ContainerEngineClient(params["docker_host"], timeout=params["timeout"])
    return _disk_users.disk_users(client, store_root, top)


def engine_facts(params, state, running, mounts, files, remap):
    """``(mounts, disk_users)``: the parts of the fact that ask the engine, or, when it does
    not answer (``running`` false), why not. Under userns-remap (``remap``, the userns_remap
    fact) the engine keeps its containers in the remapped root."""
    if not running:
        unanswered = {"checked": False, "problem": "the Engine API did not answer"}
        return unanswered, dict(unanswered)
    sockets = tuple(files[name]["path"] for name in ("docker_sock", "containerd_sock"))
    store_root = _userns_remap.store_root(state.data_root, remap)
    return (
        mounts_fact(params, state, mounts, sockets),
        disk_users_fact(params, store_root),
    )


def audit_rule_facts(params, unit_paths, live_paths):
    """The audit rules in force and, for each file CIS 1.1.3-1.1.18 wants watched, whether
    one covers it (``_audit_rules``)."""
    fact = _audit_rules.audit_rules(params["host_root"])
    found = _audit_rules.targets(params["host_root"], unit_paths, live_paths)
    fact["targets"] = _audit_rules.judge(found, fact["rules"], params["host_root"])
    return fact


def engine_fact(engine_info, state, containerd_store):
    """The ``engine`` part of the fact."""
    return {
        "version": engine_info["version"],
        "version_source": engine_info["version_source"],
        "api_version": engine_info["api_version"],
        "running_driver": engine_info["running_driver"],
        "driver_status": engine_info["driver_status"],
        "image_store": (
            ("containerd" if containerd_store else "graphdriver") if state == "running" else None
        ),
        "problem": engine_info["problem"],
    }


def engine_state(params, daemon_json):
    """The EngineInForce of the read-only modules, from the daemon.json fact read already: the
    engine on ``docker_host`` and the data-root in force."""
    engine_info, engine, client = detect_engine(params["docker_host"])
    data_root, source = resolve_data_root(params["data_root"], engine_info, daemon_json)
    return EngineInForce(daemon_json, engine_info, engine, client, data_root, source, [])


def collect(params):
    """The whole ``docker_storage`` fact for the module options ``params``: the reports of
    driver_support_info, capacity_info and mounts_info on the engine and data-root in force,
    with daemon.json, the dockerd flags, the biggest disk users, the audit rules and the
    permissions.

    Raises EngineStateError for a bad ``docker_host`` or ``data_root`` option, and
    ``_support.AssessmentError`` or MountTableError when the mount table cannot be read (all
    StorageError); every other gap is reported inside the fact.
    """
    thresholds = _capacity.validate_thresholds(params["thresholds"] or {})
    daemon_json, config = daemon_json_facts(params["config_path"])
    state = engine_state(params, daemon_json)
    docker, reason = docker_state(state.engine_info, os.path.isdir(state.data_root))
    mounts = _mountinfo.read_mount_table()
    flags = flag_facts(params["host_root"], config, params["config_path"])
    files = daemon_files(
        params["host_root"], params["docker_host"], flags["unit"], params["containerd_config"]
    )
    remap = _userns_remap.userns_remap_fact(
        state.engine_info, state.data_root, daemon_json, flags["findings"],
        params["config_path"], params["host_root"],
    )  # fmt: skip
    mounts_report, users = engine_facts(params, state, docker == "running", mounts, files, remap)
    etc_docker = params["etc_docker"] or os.path.dirname(params["config_path"])
    rules = audit_rule_facts(
        params,
        {"docker_service": flags["unit"], "docker_socket": files["docker_socket_unit"]["path"]},
        {
            "data_root": state.data_root,
            "etc_docker": etc_docker,
            "daemon_json": params["config_path"],
            "containerd_config": params["containerd_config"],
            "containerd_sock": files["containerd_sock"]["path"],
        },
    )
    return {
        "docker": {"state": docker, "reason": reason},
        "engine": engine_fact(state.engine_info, docker, uses_containerd_store(state.engine_info)),
        "data_root": state.data_root,
        "data_root_source": state.data_root_source,
        "support": _driver_support_report.collect(
            {"probe": params["probe"], "required": None}, state
        )[0],
        "capacity": capacity_fact(params, state, mounts, thresholds),
        "daemon_json": daemon_json,
        "flags": flags,
        "userns_remap": remap,
        "mounts": mounts_report,
        "disk_users": users,
        "audit_rules": rules,
        "permissions": dict(
            etc_docker=path_permissions(etc_docker),
            daemon_json=path_permissions(params["config_path"]),
            data_root=path_permissions(state.data_root),
            **files,
        ),
    }


def reclaim_fact(params, facts, policy):
    """What the reclaim role would free on this host with its defaults, the audit's warning
    thresholds as targets (``_reclaim.would_free``); asked only of a running engine whose
    data-root's filesystem is below a threshold: elsewhere reclaim removes nothing."""
    if facts["docker"]["state"] != "running":
        return {"checked": False, "problem": "the Engine API did not answer"}
    if all(entry.get("status") == "ok" for entry in facts["capacity"].get("filesystems") or []):
        return {"checked": False, "problem": "not needed: every filesystem is above the thresholds"}
    return _reclaim.would_free(
        params["docker_host"],
        {
            "target_free_bytes_percent": policy["warn_free_bytes_percent"],
            "target_free_inodes_percent": policy["warn_free_inodes_percent"],
        },
    )


def audit(params):
    """storage_facts for the module options ``params``: the fact ``collect`` gathers, with the
    audit's ``checks`` and ``findings`` under ``params["policy"]``. Raises StorageError naming
    the option, file or path."""
    if params["timeout"] <= 0:
        raise EngineStateError(
            "timeout must be a positive number of seconds, got %d" % params["timeout"]
        )
    if params.get("disk_users", 0) < 0:
        raise EngineStateError(
            "disk_users must be 0 (do not ask the engine) or how many containers and images "
            "to report, got %d" % params["disk_users"]
        )
    policy = _audit_policy.check_policy(params["policy"])
    thresholds = {
        "inode_warn_percent": policy["warn_free_inodes_percent"],
        "inode_fail_percent": policy["min_free_inodes_percent"],
        "bytes_warn_percent": policy["warn_free_bytes_percent"],
        "bytes_fail_percent": policy["min_free_bytes_percent"],
    }
    facts = collect(dict(params, thresholds=thresholds))
    facts["reclaim"] = reclaim_fact(params, facts, policy)
    facts["checks"] = _audit_policy.evaluate(facts, policy)
    facts["findings"] = _audit_policy.findings(facts["checks"])
    return facts
