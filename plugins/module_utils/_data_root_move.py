# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data_root module's application layer: read the state in force, check that the move can
be made (the data-root's and, when the images live there, the host containerd's root), and run
the transaction of ``_relocation`` with the live collaborators.

``relocate`` is the whole module after the lock is taken. A refusal or a failed move raises
StorageError with the result to return beside the message; nothing has changed then, or the
transaction has rolled back (``_relocation``).

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _capacity,
    _containerd,
    _dockerd_flags,
    _drivers,
    _engine_service,
    _mountinfo,
    _path_users,
    _relocation,
    _support,
    _tree_usage,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_state import (
    EngineStateError,
    check_absolute_path,
    engine_in_force,
    uses_containerd_store,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError
from ansible_collections.dockerhost.storage.plugins.module_utils._tree_copy import (
    TreeCopy,
)


def check_options(params):
    """The target path; EngineStateError naming the option that cannot be used. Normalises
    ``containerd_path`` in ``params``."""
    target = check_absolute_path(params["path"])
    if params["containerd_path"]:
        params["containerd_path"] = check_absolute_path(
            params["containerd_path"], "containerd_path"
        )
    if params["margin_percent"] < 0:
        raise EngineStateError(
            "margin_percent must be 0 or more, got %s" % params["margin_percent"]
        )
    return target


def current_state(params):
    """``(source, driver, engine_info, engine_version, on_containerd)``."""
    state = engine_in_force(params["docker_host"], params["config_path"], strict_config=True)
    settings, engine_info = state.settings, state.engine_info
    source = state.data_root
    driver = engine_info["running_driver"] or settings["storage_driver"]
    if not driver and engine_info["version_source"] != "api":
        prior = _support.prior_drivers(source)
        driver = prior[0] if len(prior) == 1 else None
    on_containerd = uses_containerd_store(engine_info) or (
        engine_info["version_source"] != "api" and settings["containerd_snapshotter"] is True
    )
    return source, driver, engine_info, state.engine, on_containerd


def flag_problems(plan):
    """Problems with dockerd flags in force; sets ``plan["pin_driver"]``."""
    flags = _dockerd_flags.find_storage_flags("/")
    # A driver set as a dockerd flag keeps the driver; pinning it in daemon.json as well would
    # make dockerd refuse to start.
    plan["pin_driver"] = not any(f["key"] == "storage-driver" for f in flags["findings"])
    return [
        "the data-root is also given as the dockerd flag %s %s in %s; daemon.json cannot "
        "move it: remove the flag first" % (finding["flag"], finding["value"], finding["where"])
        for finding in flags["findings"]
        if finding["key"] == "data-root"
    ]


def fstab_problems(fstab_path, source):
    """With method: mount, the fstab lines that already mount something on the data-root."""
    try:
        with open(fstab_path, encoding="utf-8") as handle:
            fstab = handle.read()
    except FileNotFoundError:
        return []
    except OSError as exc:
        return ["cannot read %s: %s" % (fstab_path, exc.strerror or exc)]
    return [
        "%s:%d already mounts something on %s (%s); with method: mount the bind mount would "
        "hide it: remove that line or use method: config"
        % (fstab_path, number, source, line.strip())
        for number, line in _relocation.fstab_entries_for(fstab, source)
    ]


def driver_problems(driver, path, engine, version_source, option=None, plan=None):
    """Why ``driver`` cannot run on ``path``; the backing filesystem goes into ``plan``. With
    ``option`` (containerd's root) only a certain "no" counts."""
    try:
        _checked, evidence, report = _support.assess_data_root(path, engine, version_source)
    except _support.AssessmentError as exc:
        return [str(exc)]
    if plan is not None:
        plan["target_filesystem"] = evidence["backing_fs"]
    # On the containerd image store the driver is a snapshotter: judge its graphdriver.
    verdict = report["drivers"].get(_drivers.graphdriver_for(driver))
    if option:
        if verdict is not None and verdict["supported"] is False:
            return [
                "%s cannot run on %s %s (%s): %s"
                % (driver, option, path, evidence["backing_fs"], "; ".join(verdict["reasons"]))
            ]
        return []
    if verdict is None or verdict["supported"] is not True:
        reasons = "; ".join(verdict["reasons"]) if verdict else "unknown driver"
        return [
            "%s cannot run on %s (%s): %s"
            % (driver, path, evidence["backing_fs"], reasons or "support unknown")
        ]
    return []


def room_problems(params, source, target, journal, plan):
    """Whether the data-root fits on the target; its size goes into ``plan``."""
    nearest = _relocation.nearest_existing(target)
    try:
        usage = _tree_usage.tree_usage(source, top_layers=0)
        target_fs = os.statvfs(nearest)
        # A partial copy already there (a resumed run, or force) is rewritten in place: the
        # room it takes counts as available.
        reused = {"bytes": 0, "inodes": 0}
        if (journal or params["force"]) and os.path.isdir(target):
            reused = _tree_usage.tree_usage(target, top_layers=0)
    except OSError as exc:
        return ["cannot measure %s: %s" % (exc.filename or source, exc.strerror or exc)]
    plan.update(bytes=usage["bytes"], inodes=usage["inodes"])
    fit = _capacity.fit_on_target(
        usage["bytes"],
        usage["inodes"],
        target_fs.f_bavail * target_fs.f_frsize + reused["bytes"],
        target_fs.f_favail + reused["inodes"] if target_fs.f_files else None,
        params["margin_percent"],
    )
    return ["%s %s" % (target, reason) for reason in fit["reasons"]]


def preflight(params, source, target, driver, engine_info, engine, journal):
    """Every reason the move cannot be made, and the plan when it can."""
    problems = _relocation.target_problems(
        source, target, journal, params["force"], params["allow_same_filesystem"]
    )
    if not os.path.isdir(source):
        problems.append("the data-root in force, %s, is not a directory" % source)
        return problems, {}
    problems.extend(
        "%s is another filesystem mounted inside the data-root; its content would not be "
        "copied: move it on its own, or unmount it first" % mount
        for mount in _relocation.foreign_mounts(source)
    )
    if not driver:
        problems.append(
            "cannot tell which storage driver %s holds (the engine does not answer, daemon.json "
            "sets no storage-driver, and %s has no single graphdriver directory); set "
            "storage-driver in %s first" % (source, source, params["config_path"])
        )
    plan = {"engine_running": engine_info["version_source"] == "api", "resumed": bool(journal)}
    problems += flag_problems(plan)
    if params["method"] == "mount":
        problems += fstab_problems(params["fstab_path"], source)
    if os.path.isdir(target):
        problems.extend(
            "path %s is in use: %s (another engine may run on it); stop it first" % (target, user)
            for user in _path_users.users_of(os.path.realpath(target))
        )
    if driver:
        problems += driver_problems(
            driver, target, engine, engine_info["version_source"], plan=plan
        )
    nearest = _relocation.nearest_existing(target)
    if os.path.isdir(nearest):
        problems.extend(_relocation.metadata_problems(nearest))
    problems += room_problems(params, source, target, journal, plan)
    return problems, plan


def nesting_problems(store_root, destination, source, target):
    """containerd's root and its destination must sit beside the data-root and its target."""
    problems = []
    for one, other, name in (
        (destination, source, "the data-root"),
        (destination, target, "path"),
        (store_root, source, "the data-root"),
        (store_root, target, "path"),
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
    return problems


def config_change(params, store_root, plan, warn):
    """The change to containerd's configuration (into ``plan``), or why it cannot be made."""
    switch = _containerd.ContainerdRootSwitch(params["containerd_config_path"])
    try:
        plan["config_change"] = switch.planned(params["containerd_path"])
        left = _containerd.paths_under(switch.current(), store_root)
    except _containerd.ContainerdError as exc:
        return [str(exc)]
    if left:
        warn(
            "%s also names %s, under containerd's old root: only 'root' is changed, so "
            "containerd keeps using (and recreates) those paths there"
            % (params["containerd_config_path"], ", ".join(left))
        )
    return []


def client_problems(params, store_root, recorded, plan):
    """Clients other than Docker in containerd's root (``plan["namespaces"]``), and a containerd
    that does not answer from the root its configuration names."""
    shared = params["containerd_shared"]
    try:
        names = _containerd.namespaces()
    except _containerd.ContainerdError as exc:
        # A resumed run may have stopped containerd already: the first run's answer counts.
        plan["namespaces"] = recorded.get("namespaces")
        if plan["namespaces"] is None:
            if shared:
                return []
            return [
                "cannot tell which clients keep data in containerd's root %s (%s); set "
                "containerd_shared: true to move it anyway" % (store_root, exc)
            ]
        others = _containerd.foreign_namespaces(plan["namespaces"])
        if others and not shared:
            return [
                "containerd's root %s also holds the namespaces %s of clients other than "
                "Docker; set containerd_shared: true if moving them is intended"
                % (store_root, ", ".join(others))
            ]
        return []
    plan["namespaces"] = names
    problems = []
    if not _containerd.holds_root(store_root):
        problems.append(
            "containerd answers, but not from %s, the root %s names: it was configured "
            "anew and not restarted? Restart containerd (or put its configuration back), "
            "then run again" % (store_root, params["containerd_config_path"])
        )
    others = _containerd.foreign_namespaces(names)
    if others and not shared:
        problems.append(
            "containerd's root %s also holds the namespaces %s of clients other than Docker "
            "(Kubernetes uses k8s.io): their containers must be stopped first, and their data "
            "moves with the root; set containerd_shared: true if that is intended"
            % (store_root, ", ".join(others))
        )
    return problems


def containerd_preflight(params, store, source, target, driver, engine, manager, journal, warn):
    """Every reason the host containerd's root cannot move to ``containerd_path`` with the
    data-root, and its part of the plan. ``store`` is where the images are now."""
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
    problems += nesting_problems(store.root, destination, source, target)
    # The snapshots live here now: the snapshotter's filesystem needs what the driver's does.
    if driver:
        problems += driver_problems(driver, destination, engine, "option", "containerd_path")
    nearest = _relocation.nearest_existing(destination)
    if os.path.isdir(nearest):
        problems.extend(_relocation.metadata_problems(nearest))
    if manager != "systemd":
        problems.append(
            "the host's containerd can be stopped and started only through systemd here "
            "(containerd.service); it is %s" % (manager or "unknown")
        )
    problems += config_change(params, store.root, plan, warn)
    problems += client_problems(params, store.root, recorded, plan)
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


class Move:
    """One run of the module: the state in force, the journal, and the service managers."""

    def __init__(self, params, target, journal, warn):
        self.params = params
        self.target = target
        self.journal = journal
        self.warn = warn
        self.source, self.driver, self.engine_info, self.engine, self.on_containerd = current_state(
            params
        )
        self.result = {
            "changed": False,
            "source": self.source,
            "path": target,
            "driver": self.driver,
        }
        try:
            self.manager = _engine_service.detect_manager(
                params["service_manager"], params["init_script"]
            )
            self.manager_problem = None
        except _engine_service.ServiceError as exc:
            self.manager, self.manager_problem = None, str(exc)
        self.service = _engine_service.EngineService(
            self.manager, params["init_script"], params["timeout"]
        )

    def fail(self, message, **extra):
        raise StorageError(message, result=dict(self.result, **extra))

    def collaborators(self, copy, method, data_root=None):
        params = self.params
        switch = None
        if method == "mount":
            switch = _relocation.MountSwitch(
                data_root or self.source, params["fstab_path"], self.target
            )
        return _relocation.live_collaborators(
            copy,
            self.service,
            params["config_path"],
            params["docker_host"],
            params["timeout"],
            switch=switch,
        )

    def check_journal(self):
        """Refuse a journal that does not describe this move."""
        journal, target = self.journal, self.target
        distrust = _relocation.journal_problems(journal, self.source)
        if distrust:
            self.fail(
                "not trusting the relocation journal %s: %s; if no move to %s is under way, "
                "remove it" % (_relocation.journal_path(target), "; ".join(distrust), target)
            )
        recorded = journal.get("containerd")
        if recorded and recorded.get("target") != self.params["containerd_path"]:
            self.fail(
                "the relocation journal %s moves containerd's root to %s as well; set "
                "containerd_path: %s to resume it"
                % (
                    _relocation.journal_path(target),
                    recorded.get("target"),
                    recorded.get("target"),
                )
            )

    def finish_interrupted(self, check_mode):
        """An earlier run switched to the target and was stopped before it finished."""
        journal, result = self.journal, self.result
        if check_mode:
            return dict(result, changed=True, msg="would finish the interrupted move")
        parts = self.collaborators(None, journal.get("method", "config"))
        recorded = journal.get("containerd")
        if recorded:
            parts["containerd"] = _relocation.ContainerdRoot(
                recorded["source"],
                recorded["target"],
                None,
                _containerd.ContainerdService(self.manager, self.params["timeout"]),
                _containerd.ContainerdRootSwitch(recorded["config_path"]),
            )
        relocation = _relocation.Relocation(
            journal["source"],
            self.target,
            journal["driver"],
            parts,
            remove_source=self.params["remove_source"],
        )
        relocation.resume_switched(journal)
        try:
            done = relocation.finish(journal.get("engine_was_running"), journal.get("inventory"))
        except (StorageError, OSError) as exc:
            self.fail(str(exc), steps=relocation.steps)
        result.update(done, changed=True, steps=relocation.steps, source=journal["source"])
        return result

    def containerd_store(self):
        """The host containerd's store the images live in, outside the data-root, or None."""
        params, source = self.params, self.source
        recorded = (self.journal or {}).get("containerd")
        # An interrupted move of both roots, with the engine stopped: the journal knows.
        if not (self.on_containerd or recorded):
            return None
        store = _containerd.containerd_store(source, system_config=params["containerd_config_path"])
        self.result["containerd_root"] = store.root
        if _mountinfo.is_within(store.root, source):
            return None  # dockerd's own containerd: its root moves with the data-root
        if not params["containerd_path"]:
            self.fail(
                "the engine keeps its images in the containerd image store, under %s (%s), "
                "not under the data-root %s: moving the data-root alone would leave them behind. "
                "Set containerd_path to a directory beside the new data-root to move containerd's "
                "root with it, in the same transaction" % (store.root, store.evidence, source)
            )
        return store

    def plan(self, store):
        """The plan of the move, with every reason it cannot be made."""
        params, journal = self.params, self.journal
        problems, plan = preflight(
            params, self.source, self.target, self.driver, self.engine_info, self.engine, journal
        )
        if store is not None:
            containerd_problems, plan["containerd"] = containerd_preflight(
                params,
                store,
                self.source,
                self.target,
                self.driver,
                self.engine,
                self.manager,
                journal,
                self.warn,
            )
            problems += containerd_problems
            problems += containerd_fit(
                self.target,
                plan["containerd"],
                plan,
                params["margin_percent"],
                bool(journal) or params["force"],
            )
        elif params["containerd_path"]:
            self.warn(
                "containerd_path is not used: the engine's images are not in a host containerd's "
                "store outside the data-root"
            )
        running = plan.get("engine_running")
        if self.manager_problem and running:
            problems.append(self.manager_problem)
        plan["stops"] = self.service.describe() if running and self.manager else None
        plan["method"] = params["method"]
        return problems, plan

    def relocation(self, store, plan):
        """The transaction, with the copiers of both trees."""
        params, trust = self.params, bool(self.journal) or self.params["force"]
        # The copier works on the resolved target: what the checks above judged.
        copy = TreeCopy(self.source, os.path.realpath(self.target), trust_existing=trust)
        parts = self.collaborators(copy, params["method"])
        if store is not None:
            destination = params["containerd_path"]
            containerd_copy = TreeCopy(
                store.root, os.path.realpath(destination), trust_existing=trust
            )
            parts["containerd"] = _relocation.ContainerdRoot(
                store.root,
                destination,
                containerd_copy,
                _containerd.ContainerdService(self.manager, params["timeout"]),
                _containerd.ContainerdRootSwitch(params["containerd_config_path"]),
                namespaces=plan["containerd"]["namespaces"],
            )
            data_root_users = parts["target_users"]
            parts["target_users"] = lambda: (
                data_root_users() + _path_users.users_of(containerd_copy.target)
            )
        return _relocation.Relocation(
            self.source,
            self.target,
            self.driver,
            parts,
            verify_full=params["verify"] == "full" or params["force"],
            remove_source=params["remove_source"],
            pin_driver=plan["pin_driver"],
        )


def relocate(params, target, check_mode, warn, lock_waited=None):
    """The data_root module once the options are checked and the lock is held: the result to
    return; StorageError (with the result to return) when the move is refused or fails."""
    move = Move(params, target, _relocation.read_journal(target), warn)
    journal, result = move.journal, move.result
    if journal is not None:
        move.check_journal()
    if lock_waited is not None:
        result["lock_waited"] = lock_waited
    phase = journal.get("phase") if journal else None
    if already_there(move.source, target):
        if phase in (_relocation.PHASE_SWITCHING, _relocation.PHASE_SWITCHED):
            return move.finish_interrupted(check_mode)
        return result
    if phase == _relocation.PHASE_SWITCHED:
        move.fail(
            "the journal %s says the engine was switched to %s, but it uses %s; check %s, "
            "then remove the journal to start over"
            % (_relocation.journal_path(target), target, move.source, params["config_path"])
        )
    store = move.containerd_store()
    problems, plan = move.plan(store)
    result["plan"] = plan
    if problems:
        move.fail(
            "cannot move the data-root %s to %s: %s" % (move.source, target, "; ".join(problems)),
            problems=problems,
        )
    if check_mode:
        return dict(result, changed=True)
    relocation = move.relocation(store, plan)
    try:
        done = relocation.run(journal)
    except (StorageError, OSError) as exc:
        move.fail(str(exc), steps=relocation.steps, timings=relocation.timings)
    result.update(done, changed=True, steps=relocation.steps, timings=relocation.timings)
    return result
