# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The daemon_config module's application layer: read daemon.json, merge the storage keys,
check the result as dockerd would (driver support on the data-root in force, storage options,
the image store across a data-root change, flags in the unit, ``dockerd --validate``), and
write it atomically.

``check_flags`` runs before the engine lock is taken, ``update`` with it held. Both raise
StorageError, with the result to return beside the message; nothing is written then. The rules
themselves are in ``_daemon_config`` and ``_daemon_json``.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _daemon_config,
    _daemon_json,
    _dockerd_flags,
    _drivers,
    _support,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._atomic_file import (
    BackupError,
    make_backup,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    find_executable,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_state import (
    detect_engine,
    uses_containerd_store,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError


def check_flags(params):
    """The dockerd flags in force (``_dockerd_flags.find_storage_flags``); StorageError when
    dockerd reads another configuration file than ``config_path``."""
    flags = _dockerd_flags.find_storage_flags(params["host_root"])
    problem = _dockerd_flags.config_file_problem(
        flags, params["config_path"], params["host_root"], "config_path"
    )
    if problem:
        raise StorageError(problem, result={"flags": flags["findings"]})
    return flags


def data_roots(old_config, new_config, flag_findings, engine_info):
    """``(before, after)``: the data-root in force now and with the new file."""
    from_flags = [f["value"] for f in flag_findings if f["key"] == "data-root"]
    flag = from_flags[-1] if from_flags else None

    def from_file(config):
        return config.get("data-root") or config.get("graph") or flag

    before = engine_info.get("data_root") or from_file(old_config)
    after = from_file(new_config) or _daemon_json.DEFAULT_DATA_ROOT
    return before or _daemon_json.DEFAULT_DATA_ROOT, os.path.normpath(after)


def assess(params, config, data_root, engine, engine_info):
    """``(report, evidence)`` of driver_support_info for ``data_root``; (None, None) when
    support_check is false."""
    if not params["support_check"]:
        return None, None
    _checked, evidence, report = _support.assess_data_root(
        data_root,
        engine,
        engine_info["version_source"],
        containerd_snapshotter=_daemon_config.get_snapshotter(config),
    )
    return report, evidence


def check_driver(config, where, engine, report):
    """DaemonConfigError when dockerd would refuse the driver of ``config`` (or, without one,
    find none to pick); return warnings."""
    snapshotter = _daemon_config.get_snapshotter(config)
    driver = config.get("storage-driver")
    if not driver:
        if report is not None and report["would_pick"]["driver"] is None:
            raise _daemon_config.DaemonConfigError(
                "storage-driver is not set and dockerd would refuse to start on %s: %s; set "
                "storage_driver" % (where, report["would_pick"]["reason"])
            )
        return []
    _daemon_config.check_storage_driver(driver, engine, snapshotter)
    if report is None:
        return []
    verdict = report["drivers"][_daemon_config.graphdriver_for(driver)]
    why = "; ".join(verdict["reasons"])
    if verdict["supported"] is False:
        raise _daemon_config.DaemonConfigError(
            "storage-driver: %s cannot run on %s: %s" % (driver, where, why)
        )
    if verdict["supported"] is None:
        return ["storage-driver: cannot tell whether %s runs on %s: %s" % (driver, where, why)]
    return []


def check_settings(config, data_root, engine, engine_info, report, evidence):
    """Raise DaemonConfigError when dockerd would refuse ``config``; return warnings."""
    where = "%s (%s, Docker Engine %s)" % (
        data_root,
        evidence["backing_fs"] if evidence else "filesystem not checked",
        _drivers.format_version(engine),
    )
    warnings = check_driver(config, where, engine, report)
    opts = config.get("storage-opts") or []
    if opts:
        effective = (
            config.get("storage-driver")
            or (report and report["would_pick"]["driver"])
            or (engine_info.get("running_driver"))
        )
        if not effective:
            raise _daemon_config.DaemonConfigError(
                "storage-opts apply to the storage driver, and none is set or can be told: set "
                "storage_driver"
            )
        warnings += _daemon_config.check_storage_opts(opts, effective, engine, backing=evidence)
    return warnings


def pin_image_store(engine, engine_info, before_root, after_root, report):
    """The setting that keeps the image store in use across the data-root move, as
    ``{key, value, reason}``; DaemonConfigError when nothing tells which store that is."""
    pin = _daemon_config.store_pin(
        engine_info.get("running_driver"),
        uses_containerd_store(engine_info),
        report["recommended"] if report else None,
    )
    if pin is None:
        raise _daemon_config.DaemonConfigError(
            "data-root changes from %s to %s, and Docker Engine %s would give the empty "
            "data-root the containerd image store, leaving the images of the current store "
            "behind; set storage_driver or containerd_snapshotter to say which store to use"
            % (before_root, after_root, _drivers.format_version(engine))
        )
    return dict(zip(("key", "value", "reason"), pin))


def write(target, text, backup):
    """Write ``text`` to ``target`` atomically, after a backup readable only by the file's
    owner when ``backup``; return the backup's path (or None). A failed backup is an error
    before anything is written."""
    backup_file = None
    if backup:
        try:
            backup_file = make_backup(target)
        except BackupError as exc:
            raise StorageError("%s was not changed: %s" % (target, exc)) from None
    try:
        _daemon_json.make_parent_directories(target)
        _daemon_json.write_daemon_json_atomically(target, text)
    except OSError as exc:
        raise StorageError("cannot write %s: %s" % (target, exc.strerror or exc)) from None
    return backup_file


def read_current(params):
    """``(raw bytes or None, configuration, data_root option checked)``."""
    path = params["config_path"]
    raw, config = _daemon_json.read_daemon_json_for_update(path)
    _daemon_config.check_key_types(config, path)
    data_root = params["data_root"]
    if data_root is not None:
        data_root = _daemon_config.check_data_root(data_root)
    if "graph" in config and (data_root or "data-root" in params["remove"]):
        raise _daemon_config.DaemonConfigError(
            "%s sets the legacy key graph, which is data-root under its old name; rename it "
            "to data-root (dockerd 23.0 and later refuse it) and run again" % path
        )
    return raw, config, data_root


class Candidate:
    """The configuration to write, with what was learnt on the way."""

    def __init__(self, config, new_config, changed_keys, engine_info, engine):
        self.config = config
        self.new_config = new_config
        self.changed_keys = changed_keys
        self.engine_info = engine_info
        self.engine = engine
        self.pinned = None
        self.warnings = []

    def pin_store(self, params, before_root, after_root, report, evidence):
        """Keep the image store across a data-root change (Engine 29 and later); return the
        support report for the pinned configuration."""
        engine, engine_info = self.engine, self.engine_info
        if not _daemon_config.needs_store_pin(
            engine,
            before_root,
            after_root,
            self.new_config,
            params["containerd_snapshotter"] is not None,
        ):
            return report
        pinned = pin_image_store(engine, engine_info, before_root, after_root, report)
        if pinned["key"] in params["remove"]:
            raise _daemon_config.DaemonConfigError(
                "%s is listed in remove, but data-root moves from %s to %s and Docker Engine "
                "%s would then choose the image store by itself; set containerd_snapshotter to "
                "choose it explicitly"
                % (pinned["key"], before_root, after_root, _drivers.format_version(engine))
            )
        self.pinned = pinned
        self.new_config = _daemon_config.merge_storage_keys(
            self.new_config, {pinned["key"]: pinned["value"]}
        )[0]
        self.changed_keys = _daemon_config.changed_storage_keys(self.config, self.new_config)
        self.warnings.append(
            "%s set to %s so that the image store does not switch with the new data-root (%s)"
            % (pinned["key"], pinned["value"], pinned["reason"])
        )
        if report is None:
            return None
        # Only the would-pick depends on the snapshotter: no second probe.
        return _support.build_report(
            engine,
            engine_info["version_source"],
            evidence,
            _daemon_config.get_snapshotter(self.new_config),
        )


def validate(path, text, tmpdir):
    """``<dockerd> --validate`` when the installed dockerd offers it and the text passes it,
    None without one; StorageError with dockerd's words when it refuses the text."""
    dockerd = find_executable("dockerd")
    if not (dockerd and _daemon_json.dockerd_offers_validate(dockerd)):
        return None
    ok, output = _daemon_json.validate_with_dockerd(dockerd, text, tmpdir)
    if not ok:
        raise StorageError("%s --validate refuses the new %s: %s" % (dockerd, path, output))
    return "%s --validate" % dockerd


def candidate(params, flags):
    """``(raw, candidate, data-root after, support report, evidence)``: the file as it is and
    the configuration to write, checked."""
    raw, config, data_root = read_current(params)
    wanted = {
        "storage-driver": params["storage_driver"],
        "storage-opts": params["storage_opts"],
        "data-root": data_root,
        "containerd-snapshotter": params["containerd_snapshotter"],
    }
    engine_info, engine, _client = detect_engine(params["docker_host"], params["engine_version"])
    new_config, changed_keys = _daemon_config.merge_storage_keys(config, wanted, params["remove"])
    chosen = Candidate(config, new_config, changed_keys, engine_info, engine)
    before_root, after_root = data_roots(config, new_config, flags["findings"], engine_info)
    report, evidence = assess(params, new_config, after_root, engine, engine_info)
    report = chosen.pin_store(params, before_root, after_root, report, evidence)
    chosen.warnings += check_settings(
        chosen.new_config, after_root, engine, engine_info, report, evidence
    )
    conflicts = _dockerd_flags.conflicts_with_config(flags["findings"], chosen.new_config)
    if conflicts and params["conflicts"] == "fail":
        raise StorageError("; ".join(conflicts), result={"flags": flags["findings"]})
    chosen.warnings += conflicts
    return raw, chosen, after_root


def update(params, flags, check_mode, diff, tmpdir):
    """``(result, warnings)`` of daemon_config for the module options ``params`` and the
    dockerd ``flags`` in force, with the engine lock held (unless ``check_mode``)."""
    path = params["config_path"]
    raw, chosen, after_root = candidate(params, flags)
    before_text = raw.decode("utf-8") if raw is not None else ""
    changed = bool(chosen.changed_keys)
    after_text = _daemon_config.render_daemon_json(chosen.new_config) if changed else before_text
    validated_by = validate(path, after_text, tmpdir) if changed else None
    # A link to the file stays a link: the file it points to is replaced.
    target = os.path.realpath(path) if os.path.islink(path) else path
    backup_file = None
    if changed and not check_mode:
        backup_file = write(target, after_text, backup=raw is not None and params["backup"])
    warnings = chosen.warnings
    if raw is not None:
        warnings += _daemon_json.mode_problems(target)
    result = {
        "changed": changed,
        "path": path,
        "config": chosen.new_config,
        "changed_keys": chosen.changed_keys,
        "restart_required": changed,
        "data_root": after_root,
        "pinned": chosen.pinned,
        "flags": flags["findings"],
        "validated_by": validated_by,
        "engine": chosen.engine_info,
    }
    if backup_file:
        result["backup_file"] = backup_file
    if diff:
        result["diff"] = {
            "before": before_text,
            "after": after_text,
            "before_header": path if raw is not None else "%s (absent)" % path,
            "after_header": path,
        }
    return result, warnings
