#!/usr/bin/python
# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: data_root
short_description: Move Docker's data-root to another filesystem without losing anything
version_added: 0.1.0
description:
  - Relocates the data-root the engine uses (such as C(/var/lib/docker)) to O(path), as one
    transaction, with the engine stopped only for a final incremental pass.
  - Preflight, changing nothing and listing every reason when it refuses. The source is the
    data-root in force. The target is absent or empty, on another filesystem, neither inside
    the other. Its filesystem passes the driver checks of M(dockerhost.storage.driver_support_info)
    for the driver in use (d_type, a real overlay mount). It has room for the used bytes and
    inodes plus a margin. It keeps C(trusted.*) and C(security.*) extended attributes and
    device nodes. No C(--data-root) flag is set in the docker unit or its environment files.
  - Then a bulk copy while the engine runs (written to disk before the engine stops), a stop of
    the engine, a final pass that copies what changed (reading only the entries where changes
    were recorded during the bulk copy, where the kernel can record them), a check of the copy
    entry by entry (type, mode, owner, size, mtime, device
    numbers, every extended attribute and ACL, hard-link groups, symlink targets, sparse
    extents, and the content of what changed after the bulk copy), the switch of C(data-root)
    in daemon.json with the storage driver pinned, and a start of the engine, confirmed over
    the Engine API. The engine must run the same driver from the new root with every image,
    container and volume. Containers that ran before run again.
  - Any failure after the engine stopped puts daemon.json back and starts the engine on the
    original data-root before the task fails. The source is never modified; after success it
    is kept as C(<source>.relocated-<UTC time>) unless O(remove_source=true).
  - A journal in C(/var/lib/dockerhost-storage/relocation/) (a directory only root may write;
    one file per target, C(<last component of the target>-<hash of its path>.json)) lets a run
    that was killed at any moment be completed by the next run. A journal that root does not
    own, that others may write, or whose source is not the data-root in force (or, after the
    switch, the one its saved configuration names) is refused.
  - The copy is made by the collection's own copier (see C(docs/relocation.md)), not rsync.
author:
  - dockerhost.storage maintainers (!UNKNOWN)
options:
  path:
    description:
      - The new data-root, an absolute path on the filesystem that should hold Docker's data.
      - Missing directories are created.
    type: path
    required: true
  state:
    description:
      - C(relocated) makes the engine run from O(path) with everything it had.
    type: str
    choices: [relocated]
    default: relocated
  method:
    description:
      - C(config) writes the new C(data-root) into daemon.json (with C(storage-driver) pinned, so
        that the engine keeps its driver and image store on the new root).
      - C(mount) leaves daemon.json alone and bind-mounts O(path) over the old data-root path, with
        a line in O(fstab_path) that mounts it at boot, for setups that hard-code
        C(/var/lib/docker). The old data then stays beneath the mount (it cannot be renamed
        there); O(remove_source=true) removes it.
    type: str
    choices: [config, mount]
    default: config
  fstab_path:
    description:
      - The fstab that gets the bind mount line with O(method=mount).
    type: path
    default: /etc/fstab
  force:
    description:
      - Copy into a O(path) that is not empty. Entries there that are not in the source are
        removed.
    type: bool
    default: false
  allow_same_filesystem:
    description:
      - Allow a target on the same filesystem as the source (it frees no space).
    type: bool
    default: false
  remove_source:
    description:
      - Remove the old data-root after success instead of keeping it under a new name.
    type: bool
    default: false
  verify:
    description:
      - C(changed) hashes the content of the files that changed after the bulk copy; all other
        attributes of every entry are compared either way.
      - C(full) hashes the content of every file (slower; used automatically when a killed run
        is resumed).
    type: str
    choices: [changed, full]
    default: changed
  service_manager:
    description:
      - How the engine is stopped and started. C(auto) uses systemd when it is the init system
        (C(docker.socket) and C(docker.service)), else the init script O(init_script).
    type: str
    choices: [auto, systemd, sysvinit]
    default: auto
  init_script:
    description:
      - The init script used when O(service_manager) is C(sysvinit).
    type: path
    default: /etc/init.d/docker
  timeout:
    description:
      - Seconds to wait for the engine to stop, and to answer again after a start.
    type: int
    default: 120
  containerd_path:
    description:
      - Where the host containerd's root goes, when the engine keeps its images in the
        containerd image store of the host's containerd (C(containerd.service), as Debian's
        C(docker.service) starts dockerd with C(--containerd)) rather than under the data-root.
      - It moves with the data-root, in the same transaction; see the notes. Without this
        option such a move is refused, since the images would stay behind.
      - A directory beside O(path), not inside it nor around it; the same rules as for O(path)
        apply (absent or empty, on another filesystem than the old root, parents only root may
        write).
    type: path
  containerd_config_path:
    description:
      - The containerd configuration whose top-level C(root) is set to O(containerd_path). Only
        that line changes (or is added before the first table); a file that imports others, sets
        C(root) twice or not as a one-line string is refused.
    type: path
    default: /etc/containerd/config.toml
  containerd_shared:
    description:
      - Move containerd's root even when clients other than Docker keep data there (namespaces
        other than C(moby) and C(plugins.moby), such as Kubernetes' C(k8s.io)), or when its
        namespaces cannot be listed (no C(ctr), containerd not running). Their containers must
        be stopped first; the move stops, and rolls back, while any container still runs on
        layers under containerd's old root once containerd has stopped.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dockerhost.storage.engine
  - dockerhost.storage.engine.config_path
  - dockerhost.storage.engine.margin
  - dockerhost.storage.engine_lock
attributes:
  check_mode:
    support: full
    details: Runs the whole preflight and returns the plan; nothing is copied or stopped. The
      preflight's probes (a test overlay mount, an xattr and a device node) are made in a
      temporary directory next to the target and removed again.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Needs root.
  - Engines on the containerd image store (the default of Docker Engine 29 on a fresh
    data-root, or C(features.containerd-snapshotter)) keep their images under containerd's
    root. When dockerd runs its own containerd (no host containerd answered at its start), that
    root is C(<data-root>/containerd/daemon) and moves with the data-root; RV(containerd_root)
    names it. When the host's containerd keeps the images, outside the data-root, its root
    moves too when O(containerd_path) is set (and the move is refused otherwise). Both trees
    are copied while everything runs, the engine and then containerd are stopped, both get a
    final pass and are verified, containerd's configuration and then daemon.json are switched,
    containerd and then the engine are started, and every image (by ID and tag), container and
    volume must be there, with containerd holding its new root open. Any failure puts both
    files back and starts containerd and the engine on the old roots. Check mode shows both
    trees in RV(plan), whose C(containerd) entry holds containerd's root, its size, the new
    text of its configuration (C(config_change)) and the namespaces that share it.
seealso:
  - module: dockerhost.storage.capacity_info
  - module: dockerhost.storage.daemon_config
"""

EXAMPLES = r"""
- name: Move Docker's data to the filesystem mounted on /srv
  dockerhost.storage.data_root:
    path: /srv/docker
  register: moved

- name: Show how long the engine was down
  ansible.builtin.debug:
    msg: "{{ moved.timings.downtime | default('not stopped') }} s"

- name: Only check whether the move would work, and what it would stop
  dockerhost.storage.data_root:
    path: /srv/docker
  check_mode: true
  register: plan
"""

RETURN = r"""
source:
  description: The data-root in force before the move.
  returned: always
  type: str
  sample: /var/lib/docker
path:
  description: The new data-root.
  returned: always
  type: str
  sample: /srv/docker
containerd_root:
  description:
    - The root of the containerd that keeps the engine's images, when the engine uses the
      containerd image store. It moves with the data-root when it lies below it.
  returned: when the engine uses the containerd image store
  type: str
  sample: /var/lib/docker/containerd/daemon
lock_waited:
  description:
    - Seconds this run waited for the host's engine lock (see O(lock_timeout)) before it
      started; more than zero when another run held it.
  returned: when not in check mode
  type: float
  sample: 0.0
driver:
  description: The storage driver the engine uses, pinned in daemon.json with the new data-root.
  returned: always
  type: str
  sample: overlay2
plan:
  description:
    - What the move needs and does; returned in check mode and on success.
    - When containerd's root moves too (O(containerd_path)), C(containerd) holds its C(source),
      C(path), C(config_path), C(stops), C(bytes), C(inodes), C(namespaces) (null when they
      could not be listed) and C(config_change), the text its configuration would get.
  returned: when the data-root changes or would change
  type: dict
  sample:
    bytes: 1073741824
    inodes: 120345
    engine_running: true
    stops: "systemctl stop/start docker.socket docker.service"
    target_filesystem: xfs
    resumed: false
    method: config
steps:
  description: What was done, in order.
  returned: when the data-root changed
  type: list
  elements: str
timings:
  description:
    - Seconds spent in C(bulk_copy), C(verify_while_running), C(sync_while_running) (writing the
      copy to disk while the engine runs), C(stop_engine), C(final_pass), C(verify), C(sync),
      C(start_engine), and C(downtime) (from the stop until the engine answered again); when
      containerd's root moves too, also C(bulk_copy_containerd),
      C(verify_containerd_while_running), C(stop_containerd), C(final_pass_containerd),
      C(verify_containerd) and C(start_containerd).
    - The final pass reads only the entries where changes were recorded while the engine ran
      (fanotify, Linux 5.9 and later); see C(steps) for what it read, or why it walked the whole
      tree.
  returned: when the data-root changed
  type: dict
source_kept_at:
  description: Where the old data-root was kept, or null when it was removed.
  returned: when the data-root changed
  type: str
  sample: /var/lib/docker.relocated-20261124T021500Z
containerd_root_kept_at:
  description:
    - Where containerd's old root was kept (renamed as the data-root is), or null when it was
      removed; only when O(containerd_path) moved it.
  returned: when containerd's root moved
  type: str
  sample: /var/lib/containerd.relocated-20261124T021500Z
restarted_containers:
  description: Containers that ran before the move and were started again after it.
  returned: when the data-root changed
  type: list
  elements: str
problems:
  description: Every reason the preflight refused the move.
  returned: on failure in preflight
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _capacity,
    _containerd,
    _dockerd_flags,
    _drivers,
    _engine_service,
    _module_options,
    _mountinfo,
    _path_users,
    _relocation,
    _support,
    _tree_usage,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    EngineUnavailable,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_lock import (
    hold_engine_lock,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_state import (
    EngineStateError,
    check_absolute_path,
    engine_in_force,
    uses_containerd_store,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._tree_copy import (
    CopyError,
    TreeCopy,
)


def argument_spec():
    return _module_options.argument_spec(
        dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["relocated"], default="relocated"),
            method=dict(type="str", choices=["config", "mount"], default="config"),
            fstab_path=dict(type="path", default="/etc/fstab"),
            force=dict(type="bool", default=False),
            allow_same_filesystem=dict(type="bool", default=False),
            remove_source=dict(type="bool", default=False),
            verify=dict(type="str", choices=["changed", "full"], default="changed"),
            service_manager=dict(
                type="str", choices=["auto", "systemd", "sysvinit"], default="auto"
            ),
            init_script=dict(type="path", default="/etc/init.d/docker"),
            timeout=dict(type="int", default=120),
            containerd_path=dict(type="path"),
            containerd_config_path=dict(type="path", default=_containerd.DEFAULT_CONTAINERD_CONFIG),
            containerd_shared=dict(type="bool", default=False),
        ),
        _module_options.DOCKER_HOST,
        _module_options.CONFIG_PATH,
        _module_options.MARGIN,
        _module_options.ENGINE_LOCK,
    )


def current_state(module):
    """``(source, driver, engine_info, engine_version, on_containerd)``."""
    params = module.params
    try:
        state = engine_in_force(params["docker_host"], params["config_path"], strict_config=True)
    except EngineStateError as exc:
        module.fail_json(msg=str(exc))
    settings, engine_info, engine, source = (
        state.settings,
        state.engine_info,
        state.engine,
        state.data_root,
    )
    driver = engine_info["running_driver"] or settings["storage_driver"]
    if not driver and engine_info["version_source"] != "api":
        prior = _support.prior_drivers(source)
        driver = prior[0] if len(prior) == 1 else None
    on_containerd = uses_containerd_store(engine_info) or (
        engine_info["version_source"] != "api" and settings["containerd_snapshotter"] is True
    )
    return source, driver, engine_info, engine, on_containerd


def preflight(module, source, target, driver, engine_info, engine, journal):
    """Every reason the move cannot be made, and the plan when it can."""
    params = module.params
    problems = _relocation.target_problems(
        source, target, journal, params["force"], params["allow_same_filesystem"]
    )
    if not os.path.isdir(source):
        problems.append("the data-root in force, %s, is not a directory" % source)
        return problems, {}
    for mount in _relocation.foreign_mounts(source):
        problems.append(
            "%s is another filesystem mounted inside the data-root; its content would not be "
            "copied: move it on its own, or unmount it first" % mount
        )
    if not driver:
        problems.append(
            "cannot tell which storage driver %s holds (the engine does not answer, daemon.json "
            "sets no storage-driver, and %s has no single graphdriver directory); set "
            "storage-driver in %s first" % (source, source, params["config_path"])
        )
    flags = _dockerd_flags.find_storage_flags("/")
    plan = {"engine_running": engine_info["version_source"] == "api", "resumed": bool(journal)}
    # A driver set as a dockerd flag keeps the driver; pinning it in daemon.json as well would
    # make dockerd refuse to start.
    plan["pin_driver"] = not any(f["key"] == "storage-driver" for f in flags["findings"])
    for finding in flags["findings"]:
        if finding["key"] == "data-root":
            problems.append(
                "the data-root is also given as the dockerd flag %s %s in %s; daemon.json cannot "
                "move it: remove the flag first"
                % (finding["flag"], finding["value"], finding["where"])
            )
    if params["method"] == "mount":
        try:
            with open(params["fstab_path"], encoding="utf-8") as handle:
                fstab = handle.read()
        except FileNotFoundError:
            fstab = ""
        except OSError as exc:
            problems.append("cannot read %s: %s" % (params["fstab_path"], exc.strerror or exc))
            fstab = ""
        for number, line in _relocation.fstab_entries_for(fstab, source):
            problems.append(
                "%s:%d already mounts something on %s (%s); with method: mount the bind mount would "
                "hide it: remove that line or use method: config"
                % (params["fstab_path"], number, source, line.strip())
            )
    if os.path.isdir(target):
        problems.extend(
            "path %s is in use: %s (another engine may run on it); stop it first" % (target, user)
            for user in _path_users.users_of(os.path.realpath(target))
        )
    nearest = _relocation.nearest_existing(target)
    if driver:
        try:
            _checked, evidence, report = _support.assess_data_root(
                target, engine, engine_info["version_source"]
            )
        except _support.AssessmentError as exc:
            problems.append(str(exc))
        else:
            plan["target_filesystem"] = evidence["backing_fs"]
            # On the containerd image store the driver is a snapshotter: judge its graphdriver.
            verdict = report["drivers"].get(_drivers.graphdriver_for(driver))
            if verdict is None or verdict["supported"] is not True:
                reasons = "; ".join(verdict["reasons"]) if verdict else "unknown driver"
                problems.append(
                    "%s cannot run on %s (%s): %s"
                    % (driver, target, evidence["backing_fs"], reasons or "support unknown")
                )
    if os.path.isdir(nearest):
        problems.extend(_relocation.metadata_problems(nearest))
    try:
        usage = _tree_usage.tree_usage(source, top_layers=0)
        target_fs = os.statvfs(nearest)
        # A partial copy already there (a resumed run, or force) is rewritten in place: the
        # room it takes counts as available.
        reused = {"bytes": 0, "inodes": 0}
        if (journal or params["force"]) and os.path.isdir(target):
            reused = _tree_usage.tree_usage(target, top_layers=0)
    except OSError as exc:
        problems.append("cannot measure %s: %s" % (exc.filename or source, exc.strerror or exc))
    else:
        plan.update(bytes=usage["bytes"], inodes=usage["inodes"])
        fit = _capacity.fit_on_target(
            usage["bytes"],
            usage["inodes"],
            target_fs.f_bavail * target_fs.f_frsize + reused["bytes"],
            target_fs.f_favail + reused["inodes"] if target_fs.f_files else None,
            params["margin_percent"],
        )
        problems.extend("%s %s" % (target, reason) for reason in fit["reasons"])
    return problems, plan


def containerd_preflight(module, store, source, target, driver, engine, manager, journal):
    """Every reason the host containerd's root cannot move to ``containerd_path`` with the
    data-root, and its part of the plan. ``store`` is where the images are now."""
    params = module.params
    destination = params["containerd_path"]
    recorded = (journal or {}).get("containerd") or {}
    plan = {
        "source": store.root,
        "path": destination,
        "config_path": params["containerd_config_path"],
        "stops": _containerd.ContainerdService(manager).describe(),
    }
    problems = _relocation.target_problems(
        store.root,
        destination,
        (journal or {}).get("containerd") and {"source": store.root},
        params["force"],
        params["allow_same_filesystem"],
        option="containerd_path",
        source_name="containerd's root",
    )
    for one, other, name in (
        (destination, source, "the data-root"),
        (destination, target, "path"),
        (store.root, source, "the data-root"),
        (store.root, target, "path"),
    ):
        if _mountinfo.is_within(one, other) or _mountinfo.is_within(other, one):
            problems.append(
                "%s %s and %s %s would nest: each copy would take in, or remove, what the other "
                "holds; keep the data-root and containerd's root side by side"
                % (
                    "containerd_path" if one == destination else "containerd's root",
                    one,
                    name,
                    other,
                )
            )
    # The snapshots live here now: the snapshotter's filesystem needs what the driver's does.
    if driver:
        try:
            _checked, evidence, report = _support.assess_data_root(destination, engine, "option")
        except _support.AssessmentError as exc:
            problems.append(str(exc))
        else:
            verdict = report["drivers"].get(_drivers.graphdriver_for(driver))
            if verdict is not None and verdict["supported"] is False:
                problems.append(
                    "%s cannot run on containerd_path %s (%s): %s"
                    % (driver, destination, evidence["backing_fs"], "; ".join(verdict["reasons"]))
                )
    nearest = _relocation.nearest_existing(destination)
    if os.path.isdir(nearest):
        problems.extend(_relocation.metadata_problems(nearest))
    if manager != "systemd":
        problems.append(
            "the host's containerd can be stopped and started only through systemd here "
            "(containerd.service); it is %s" % (manager or "unknown")
        )
    switch = _containerd.ContainerdRootSwitch(params["containerd_config_path"])
    try:
        plan["config_change"] = switch.planned(destination)
        left = _containerd.paths_under(switch.current(), store.root)
    except _containerd.ContainerdError as exc:
        problems.append(str(exc))
    else:
        if left:
            module.warn(
                "%s also names %s, under containerd's old root: only 'root' is changed, so "
                "containerd keeps using (and recreates) those paths there"
                % (params["containerd_config_path"], ", ".join(left))
            )
    try:
        names = _containerd.namespaces()
    except _containerd.ContainerdError as exc:
        # A resumed run may have stopped containerd already: the first run's answer counts.
        plan["namespaces"] = recorded.get("namespaces")
        if plan["namespaces"] is not None:
            others = _containerd.foreign_namespaces(plan["namespaces"])
            if others and not params["containerd_shared"]:
                problems.append(
                    "containerd's root %s also holds the namespaces %s of clients other than "
                    "Docker; set containerd_shared: true if moving them is intended"
                    % (store.root, ", ".join(others))
                )
        elif not params["containerd_shared"]:
            problems.append(
                "cannot tell which clients keep data in containerd's root %s (%s); set "
                "containerd_shared: true to move it anyway" % (store.root, exc)
            )
    else:
        plan["namespaces"] = names
        if not _containerd.holds_root(store.root):
            problems.append(
                "containerd answers, but not from %s, the root %s names: it was configured "
                "anew and not restarted? Restart containerd (or put its configuration back), "
                "then run again" % (store.root, params["containerd_config_path"])
            )
        others = _containerd.foreign_namespaces(names)
        if others and not params["containerd_shared"]:
            problems.append(
                "containerd's root %s also holds the namespaces %s of clients other than Docker "
                "(Kubernetes uses k8s.io): their containers must be stopped first, and their data "
                "moves with the root; set containerd_shared: true if that is intended"
                % (store.root, ", ".join(others))
            )
    try:
        usage = _tree_usage.tree_usage(store.root, top_layers=0)
        plan.update(bytes=usage["bytes"], inodes=usage["inodes"])
    except OSError as exc:
        problems.append("cannot measure %s: %s" % (exc.filename or store.root, exc.strerror or exc))
    return problems, plan


def containerd_fit(target, containerd_plan, data_root_plan, margin_percent, reuse):
    """Reasons why containerd's root does not fit where it goes: on the target's filesystem,
    beside the data-root's copy, or on a filesystem of its own. With ``reuse`` (a resumed run,
    or force), partial copies already there count as room, as in the data-root's check."""
    destination = containerd_plan["path"]
    nearest = _relocation.nearest_existing(destination)
    try:
        fs = os.statvfs(nearest)
        shared = os.stat(nearest).st_dev == os.stat(_relocation.nearest_existing(target)).st_dev
        copies = [destination] + ([target] if shared else [])
        reused = [
            _tree_usage.tree_usage(path, top_layers=0)
            for path in copies
            if reuse and os.path.isdir(path)
        ]
    except OSError as exc:
        return ["cannot measure %s: %s" % (exc.filename or nearest, exc.strerror or exc)]
    used_bytes, used_inodes = containerd_plan.get("bytes", 0), containerd_plan.get("inodes", 0)
    if shared:
        used_bytes += data_root_plan.get("bytes", 0)
        used_inodes += data_root_plan.get("inodes", 0)
    fit = _capacity.fit_on_target(
        used_bytes,
        used_inodes,
        fs.f_bavail * fs.f_frsize + sum(usage["bytes"] for usage in reused),
        fs.f_favail + sum(usage["inodes"] for usage in reused) if fs.f_files else None,
        margin_percent,
    )
    what = "with the data-root's copy" if shared else ""
    return [
        "%s %s%s" % (destination, reason, " (" + what + ")" if what else "")
        for reason in fit["reasons"]
    ]


def already_there(source, target):
    """True when the data-root in force is the target, or shows it (a bind mount)."""
    if os.path.normpath(source) == target:
        return True
    try:
        return os.path.samefile(source, target)
    except OSError:
        return False


def finish_interrupted(module, journal, target, collaborators, manager, result):
    """An earlier run switched to the target and was stopped before it finished."""
    if module.check_mode:
        module.exit_json(changed=True, msg="would finish the interrupted move", **result)
    parts = collaborators(None, journal.get("method", "config"))
    recorded = journal.get("containerd")
    if recorded:
        parts["containerd"] = _relocation.ContainerdRoot(
            recorded["source"],
            recorded["target"],
            None,
            _containerd.ContainerdService(manager, module.params["timeout"]),
            _containerd.ContainerdRootSwitch(recorded["config_path"]),
        )
    relocation = _relocation.Relocation(
        journal["source"],
        target,
        journal["driver"],
        parts,
        remove_source=module.params["remove_source"],
    )
    relocation.resume_switched(journal)
    try:
        done = relocation.finish(journal.get("engine_was_running"), journal.get("inventory"))
    except (_relocation.RelocationError, CopyError, EngineUnavailable, OSError) as exc:
        module.fail_json(msg=str(exc), steps=relocation.steps, **result)
    result.update(done, changed=True, steps=relocation.steps, source=journal["source"])
    module.exit_json(**result)


def run(module):
    params = module.params
    try:
        target = check_absolute_path(params["path"])
        if params["containerd_path"]:
            params["containerd_path"] = check_absolute_path(
                params["containerd_path"], "containerd_path"
            )
    except EngineStateError as exc:
        module.fail_json(msg=str(exc))
    if params["margin_percent"] < 0:
        module.fail_json(msg="margin_percent must be 0 or more, got %s" % params["margin_percent"])
    lock = None
    if not module.check_mode:
        # Held until the module exits: the journal, the engine and daemon.json are this run's.
        lock = hold_engine_lock(module, "data_root: moving the data-root to %s" % target)
    try:
        journal = _relocation.read_journal(target)
    except _relocation.RelocationError as exc:
        module.fail_json(msg=str(exc))
    source, driver, engine_info, engine, on_containerd = current_state(module)
    result = {"changed": False, "source": source, "path": target, "driver": driver}
    if journal is not None:
        distrust = _relocation.journal_problems(journal, source)
        if distrust:
            module.fail_json(
                msg="not trusting the relocation journal %s: %s; if no move to %s is under way, "
                "remove it" % (_relocation.journal_path(target), "; ".join(distrust), target),
                **result,
            )
        recorded = journal.get("containerd")
        if recorded and recorded.get("target") != params["containerd_path"]:
            module.fail_json(
                msg="the relocation journal %s moves containerd's root to %s as well; set "
                "containerd_path: %s to resume it"
                % (
                    _relocation.journal_path(target),
                    recorded.get("target"),
                    recorded.get("target"),
                ),
                **result,
            )
    if lock is not None:
        result["lock_waited"] = lock.waited

    try:
        manager = _engine_service.detect_manager(params["service_manager"], params["init_script"])
        manager_problem = None
    except _engine_service.ServiceError as exc:
        manager, manager_problem = None, str(exc)
    service = _engine_service.EngineService(manager, params["init_script"], params["timeout"])

    def collaborators(copy, method, data_root=source):
        switch = None
        if method == "mount":
            switch = _relocation.MountSwitch(data_root, params["fstab_path"], target)
        return _relocation.live_collaborators(
            copy,
            service,
            params["config_path"],
            params["docker_host"],
            params["timeout"],
            switch=switch,
        )

    phase = journal.get("phase") if journal else None
    if already_there(source, target):
        if phase in (_relocation.PHASE_SWITCHING, _relocation.PHASE_SWITCHED):
            finish_interrupted(module, journal, target, collaborators, manager, result)
        module.exit_json(**result)
    if phase == _relocation.PHASE_SWITCHED:
        module.fail_json(
            msg="the journal %s says the engine was switched to %s, but it uses %s; check %s, "
            "then remove the journal to start over"
            % (_relocation.journal_path(target), target, source, params["config_path"]),
            **result,
        )
    store = None
    recorded = (journal or {}).get("containerd")
    if recorded and not on_containerd:
        # An interrupted move of both roots, with the engine stopped: the journal knows.
        on_containerd = True
    if on_containerd:
        store = _containerd.containerd_store(source, system_config=params["containerd_config_path"])
        result["containerd_root"] = store.root
        if _mountinfo.is_within(store.root, source):
            store = None  # dockerd's own containerd: its root moves with the data-root
        elif not params["containerd_path"]:
            module.fail_json(
                msg="the engine keeps its images in the containerd image store, under %s (%s), "
                "not under the data-root %s: moving the data-root alone would leave them behind. "
                "Set containerd_path to a directory beside the new data-root to move containerd's "
                "root with it, in the same transaction" % (store.root, store.evidence, source),
                **result,
            )
    problems, plan = preflight(module, source, target, driver, engine_info, engine, journal)
    if store is not None:
        containerd_problems, plan["containerd"] = containerd_preflight(
            module, store, source, target, driver, engine, manager, journal
        )
        problems += containerd_problems
        problems += containerd_fit(
            target,
            plan["containerd"],
            plan,
            params["margin_percent"],
            bool(journal) or params["force"],
        )
    elif params["containerd_path"]:
        module.warn(
            "containerd_path is not used: the engine's images are not in a host containerd's "
            "store outside the data-root"
        )
    if manager_problem and plan.get("engine_running"):
        problems.append(manager_problem)
    plan["stops"] = service.describe() if plan.get("engine_running") and manager else None
    plan["method"] = params["method"]
    result["plan"] = plan
    if problems:
        module.fail_json(
            msg="cannot move the data-root %s to %s: %s" % (source, target, "; ".join(problems)),
            problems=problems,
            **result,
        )
    if module.check_mode:
        result["changed"] = True
        module.exit_json(**result)

    # The copier works on the resolved target: what the checks above judged.
    copy = TreeCopy(
        source, os.path.realpath(target), trust_existing=bool(journal) or params["force"]
    )
    parts = collaborators(copy, params["method"])
    if store is not None:
        destination = params["containerd_path"]
        containerd_copy = TreeCopy(
            store.root,
            os.path.realpath(destination),
            trust_existing=bool(journal) or params["force"],
        )
        parts["containerd"] = _relocation.ContainerdRoot(
            store.root,
            destination,
            containerd_copy,
            _containerd.ContainerdService(manager, params["timeout"]),
            _containerd.ContainerdRootSwitch(params["containerd_config_path"]),
            namespaces=plan["containerd"]["namespaces"],
        )
        data_root_users = parts["target_users"]
        parts["target_users"] = lambda: (
            data_root_users() + _path_users.users_of(containerd_copy.target)
        )
    relocation = _relocation.Relocation(
        source,
        target,
        driver,
        parts,
        verify_full=params["verify"] == "full" or params["force"],
        remove_source=params["remove_source"],
        pin_driver=plan["pin_driver"],
    )
    try:
        done = relocation.run(journal)
    except (_relocation.RelocationError, CopyError, EngineUnavailable, OSError) as exc:
        module.fail_json(msg=str(exc), steps=relocation.steps, timings=relocation.timings, **result)
    result.update(done, changed=True, steps=relocation.steps, timings=relocation.timings)
    module.exit_json(**result)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run(module)


if __name__ == "__main__":
    main()
