# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to the dockerhost.storage collection: not a public API.

The audit policy: pure functions that judge a ``docker_storage`` fact (as ``storage_facts``
returns it) and return one result per check. A result is ``{check, cis, severity, status,
message, evidence}``; ``status`` is ``pass``, ``fail``, ``warn`` or ``skipped``, and a
finding is a result whose status is ``fail`` or ``warn``. Defaults follow the CIS Docker
Benchmark where it has an item and add the storage checks it lacks.
"""

from __future__ import annotations

from ansible_collections.dockerhost.storage.plugins.module_utils._audit_rules import (
    DEFAULT_PATHS as AUDIT_DEFAULT_PATHS,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._audit_rules import (
    TARGETS as AUDIT_TARGETS,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._capacity import threshold_level
from ansible_collections.dockerhost.storage.plugins.module_utils._container_mounts import (
    describe as describe_host_mount,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError
from ansible_collections.dockerhost.storage.plugins.module_utils._overlay_mounts import (
    MAX_CHAIN_LAYERS,
)

# check id -> (CIS Docker Benchmark item or None, default severity)
CHECKS = {
    "data_root_partition": ("1.1.1", "fail"),
    "containerd_root_partition": ("1.1.1", "fail"),
    **{"audit_" + name: (cis, "warn") for name, cis, _what, _where in AUDIT_TARGETS},
    "aufs_not_used": ("2.6", "fail"),
    "userns_remap": ("2.9", "warn"),
    "base_device_size": ("2.11", "warn"),
    "docker_service_owner": ("3.1", "fail"),
    "docker_service_mode": ("3.2", "fail"),
    "docker_socket_unit_owner": ("3.3", "fail"),
    "docker_socket_unit_mode": ("3.4", "fail"),
    "etc_docker_owner": ("3.5", "fail"),
    "etc_docker_mode": ("3.6", "fail"),
    "docker_sock_owner": ("3.15", "fail"),
    "docker_sock_mode": ("3.16", "fail"),
    "daemon_json_owner": ("3.17", "fail"),
    "daemon_json_mode": ("3.18", "fail"),
    "default_docker_owner": ("3.19", "fail"),
    "default_docker_mode": ("3.20", "fail"),
    "sysconfig_docker_owner": ("3.21", "fail"),
    "sysconfig_docker_mode": ("3.22", "fail"),
    "containerd_sock_owner": ("3.23", "fail"),
    "containerd_sock_mode": ("3.24", "fail"),
    "daemon_json_valid": (None, "fail"),
    "expected_driver": (None, "fail"),
    "forbidden_driver": (None, "fail"),
    "free_inodes": (None, "fail"),
    "free_bytes": (None, "fail"),
    "d_type": (None, "fail"),
    "native_overlay_diff": (None, "warn"),
    "flag_conflict": (None, "fail"),
    "merged_mounts": (None, "fail"),
    "layer_depth": (None, "fail"),
    "sensitive_host_mount": ("5.6", "fail"),
    "shared_mount_propagation": ("5.20", "warn"),
    "socket_mounted": ("5.32", "fail"),
}

# What each container-mount check finds, for its message.
HOST_MOUNT_CHECKS = {
    "sensitive_host_mount": "a sensitive host directory",
    "shared_mount_propagation": "a mount with shared propagation",
    "socket_mounted": "the Docker or containerd socket",
}

DEFAULT_POLICY = {
    "expected_drivers": [],
    "forbidden_drivers": ["aufs", "devicemapper", "overlay"],
    "min_free_inodes_percent": 5.0,
    "warn_free_inodes_percent": 10.0,
    "min_free_bytes_percent": 5.0,
    "warn_free_bytes_percent": 10.0,
    "min_free_inodes": 0,
    "min_free_bytes": 0,
    "warn_layer_depth": 100,
    "skip": [],
    "severity": {},
}

# The loosest modes CIS allows: 3.6 /etc/docker 0755, 3.18 daemon.json 0644.
ETC_DOCKER_MODE = 0o755
DAEMON_JSON_MODE = 0o644

# Section 3's files and sockets beside /etc/docker and daemon.json: (permissions entry, what it
# is, owner check, mode check, loosest mode, groups allowed besides root). The Docker socket
# may belong to the docker group (3.15); root alone is stricter and passes too.
DAEMON_FILES = (
    ("docker_service", "the unit file docker.service", 0o644, ()),
    ("docker_socket_unit", "the unit file docker.socket", 0o644, ()),
    ("docker_sock", "the Docker socket", 0o660, ("docker",)),
    ("default_docker", "the environment file", 0o644, ()),
    ("sysconfig_docker", "the environment file", 0o644, ()),
    ("containerd_sock", "containerd's socket", 0o660, ()),
)


class PolicyError(StorageError, ValueError):
    """A policy value that cannot be used; the message names the key."""


def check_policy(policy):
    """The policy with defaults filled in; PolicyError naming the first bad key."""
    merged = dict(DEFAULT_POLICY)
    for key, value in (policy or {}).items():
        if key not in DEFAULT_POLICY:
            raise PolicyError(
                "unknown policy key %s; known keys: %s" % (key, ", ".join(sorted(DEFAULT_POLICY)))
            )
        if value is not None:
            merged[key] = value
    for key in ("expected_drivers", "forbidden_drivers", "skip"):
        if not isinstance(merged[key], list):
            raise PolicyError("policy key %s must be a list, found %r" % (key, merged[key]))
    for key in (
        "min_free_inodes_percent",
        "warn_free_inodes_percent",
        "min_free_bytes_percent",
        "warn_free_bytes_percent",
        "min_free_inodes",
        "min_free_bytes",
    ):
        try:
            merged[key] = float(merged[key])
        except (TypeError, ValueError):
            raise PolicyError(
                "policy key %s must be a number, found %r" % (key, merged[key])
            ) from None
        if merged[key] < 0 or (key.endswith("percent") and merged[key] > 100):
            raise PolicyError("policy key %s out of range: %s" % (key, merged[key]))
    depth = merged["warn_layer_depth"]
    try:
        whole = not isinstance(depth, bool) and float(depth).is_integer()
    except (TypeError, ValueError):
        whole = False
    if not whole or not 1 <= float(depth) <= 125:
        raise PolicyError(
            "policy key warn_layer_depth must be a whole number of layers from 1 to 125, "
            "found %r" % (depth,)
        )
    merged["warn_layer_depth"] = int(float(depth))
    if not isinstance(merged["severity"], dict):
        raise PolicyError("policy key severity must be a dict of check id to fail or warn")
    for check, level in merged["severity"].items():
        if check not in CHECKS or level not in ("fail", "warn"):
            raise PolicyError(
                "policy severity %s: %s; give a known check id and fail or warn" % (check, level)
            )
    unknown = [check for check in merged["skip"] if check not in CHECKS]
    if unknown:
        raise PolicyError("policy skip names unknown checks: %s" % ", ".join(unknown))
    return merged


def _result(policy, check, failed, message, evidence=None):
    cis, severity = CHECKS[check]
    severity = policy["severity"].get(check, severity)
    return {
        "check": check,
        "cis": cis,
        "severity": severity,
        "status": severity if failed else "pass",
        "message": message,
        "evidence": evidence or {},
    }


def _skipped(check, why):
    cis, severity = CHECKS[check]
    return {
        "check": check,
        "cis": cis,
        "severity": severity,
        "status": "skipped",
        "message": why,
        "evidence": {},
    }


def _absent(check, entry, what):
    if entry["path"] is None:
        return _skipped(check, "%s was not found on this host" % what)
    return _skipped(check, "%s %s does not exist" % (what, entry["path"]))


def _owner_check(policy, check, entry, what, groups=()):
    if not entry["exists"]:
        return _absent(check, entry, what)
    bad = entry["uid"] != 0 or (entry["gid"] != 0 and entry["group"] not in groups)
    wanted = "root:%s" % (groups[0] if groups else "root")
    return _result(
        policy,
        check,
        bad,
        "%s %s is owned by %s:%s%s"
        % (
            what,
            entry["path"],
            entry["owner"] or entry["uid"],
            entry["group"] or entry["gid"],
            ", not %s: chown %s it" % (wanted, wanted) if bad else "",
        ),
        {"path": entry["path"], "uid": entry["uid"], "gid": entry["gid"]},
    )


def _mode_check(policy, check, entry, what, loosest):
    if not entry["exists"]:
        return _absent(check, entry, what)
    mode = int(entry["mode"], 8)
    bad = bool(mode & ~loosest)
    return _result(
        policy,
        check,
        bad,
        "%s %s has mode %s%s"
        % (
            what,
            entry["path"],
            entry["mode"],
            (", looser than %04o: chmod %04o it" % (loosest, loosest)) if bad else "",
        ),
        {"path": entry["path"], "mode": entry["mode"]},
    )


def _filesystems(facts, role):
    return [entry for entry in facts["capacity"]["filesystems"] if entry["role"] == role]


def _partition_check(policy, facts, check, role, what):
    entries = _filesystems(facts, role)
    if not entries:
        return _skipped(check, "%s was not examined" % what)
    entry = entries[0]
    bad = entry["separate_from_root"] is False
    return _result(
        policy,
        check,
        bad,
        "%s %s is on %s (%s, mounted at %s)%s"
        % (
            what,
            entry["path"],
            entry["device"],
            entry["fstype"],
            entry["mount_point"],
            ", the root filesystem: give it a filesystem of its own" if bad else "",
        ),
        {
            "path": entry["path"],
            "mount_point": entry["mount_point"],
            "device": entry["device"],
            "device_number": entry["device_number"],
        },
    )


def _free_check(policy, facts, check, kind):
    entries = facts["capacity"]["filesystems"]
    if not entries:
        return _skipped(check, "no filesystem was examined")
    prefix = "min_free_%s" % kind
    worst = None
    lines = []
    evidence = {}
    for entry in entries:
        figures = entry[kind]
        if kind == "inodes":
            if not figures["limited"]:
                continue
            free, total = figures["free"], figures["total"]
        else:
            free, total = figures["available"], figures["total"]
        level = threshold_level(
            free,
            total,
            policy["warn_free_%s_percent" % kind],
            policy[prefix + "_percent"],
            policy[prefix],
        )
        evidence[entry["path"]] = {
            "free": free,
            "total": total,
            "mount_point": entry["mount_point"],
        }
        if level != "ok":
            lines.append(
                "%s (%s on %s): %d of %d %s free"
                % (entry["path"], entry["fstype"], entry["mount_point"], free, total, kind)
            )
            if worst != "fail":
                worst = level
    if not evidence:
        return _skipped(check, "no examined filesystem limits %s" % kind)
    result = _result(
        policy,
        check,
        worst is not None,
        "; ".join(lines) or "enough free %s" % kind,
        evidence,
    )
    if worst == "warn" and result["status"] == "fail":
        # Below the warning threshold only: a warning even where the check fails.
        result["status"] = "warn"
    return result


def _audit_rule_checks(policy, facts):
    """CIS 1.1.3-1.1.18: an audit rule watches each file of the engine where the host keeps
    it; a rule on a default path does not cover a file that lives elsewhere."""
    fact = facts.get("audit_rules")
    results = []
    for name, _cis, what, _where in AUDIT_TARGETS:
        check = "audit_" + name
        target = (fact or {}).get("targets", {}).get(name)
        if facts["docker"]["state"] == "absent":
            # containerd or runc alone (a Kubernetes node) are not Docker's to audit.
            results.append(_skipped(check, "Docker is not installed here"))
        elif target is None:
            results.append(_skipped(check, "the audit rules were not examined"))
        elif not target["exists"]:
            results.append(_absent(check, dict(target), what))
        elif fact["source"] is None:
            results.append(
                _skipped(
                    check,
                    "no audit rules on this host (auditctl lists none and /etc/audit holds "
                    "none): install auditd to watch %s %s" % (what, target["path"]),
                )
            )
        else:
            results.append(_audit_rule_result(policy, name, what, target, fact["rules"]))
    return results


def _audit_rule_result(policy, name, what, target, rules):
    path, rule = target["path"], target["covered_by"]
    if rule:
        message = "%s %s is watched by the audit rule on %s" % (what, path, rule)
    else:
        # A rule on the default place of this file, which the host does not use.
        elsewhere = [r[0] for r in rules if r[0] in AUDIT_DEFAULT_PATHS.get(name, ())]
        message = "no audit rule watches %s %s%s: add -w %s -p rwxa -k docker" % (
            what,
            path,
            " (the rule on %s does not cover it)" % ", ".join(elsewhere) if elsewhere else "",
            path,
        )
    return _result(policy, "audit_" + name, rule is None, message, {"path": path, "rule": rule})


def _base_device_size_check(policy, facts):
    """CIS 2.11: devicemapper's dm.basesize left at its default until a need is shown."""
    where = [
        "%s in %s" % (option, facts["daemon_json"]["path"])
        for option in facts["daemon_json"].get("storage_opts") or []
        if str(option).replace(" ", "").startswith("dm.basesize=")
    ] + [
        "%s %s in %s" % (f["flag"], f["value"], f["where"])
        for f in facts["flags"]["findings"]
        if f["key"] == "storage-opts" and str(f["value"]).startswith("dm.basesize=")
    ]
    return _result(
        policy,
        "base_device_size",
        bool(where),
        "the base device size is changed: %s; keep the default unless a container needs "
        "more, and grow it then" % "; ".join(where)
        if where
        else "dm.basesize is not set",
        {"settings": where},
    )


def _drivers_in_use(facts):
    engine = facts["engine"]
    names = []
    for name in (engine["running_driver"], facts["daemon_json"]["storage_driver"]):
        if name and name not in names:
            names.append(name)
    names += [
        f["value"]
        for f in facts["flags"]["findings"]
        if f["key"] == "storage-driver" and f["value"] not in names
    ]
    return names


def evaluate(facts, policy=None):
    """Every check's result for one host's ``docker_storage`` fact, in ``CHECKS`` order."""
    policy = check_policy(policy)
    absent = facts["docker"]["state"] == "absent"
    results = _permission_checks(policy, facts["permissions"], absent)
    results.append(_base_device_size_check(policy, facts))
    results.extend(_audit_rule_checks(policy, facts))
    results.append(_daemon_json_valid_check(policy, facts))
    results.append(_flag_conflict_check(policy, facts))
    if absent:
        results.extend(_skipped_without_docker(facts))
    else:
        results.extend(_engine_checks(policy, facts))
    skip = set(policy["skip"])
    results = [
        r if r["check"] not in skip else _skipped(r["check"], "skipped by the policy")
        for r in results
    ]
    order = list(CHECKS)
    return sorted(results, key=lambda r: order.index(r["check"]))


def _permission_checks(policy, perms, absent):
    """CIS 3.5/3.6, 3.17/3.18 and the engine's other files: owner and mode of each, from
    ``facts["permissions"]``; containerd's socket is skipped where Docker is absent."""
    results = []
    # ``what`` names the kind of file; the path follows it in every message.
    what = "the configuration directory"
    results.append(_owner_check(policy, "etc_docker_owner", perms["etc_docker"], what))
    results.append(
        _mode_check(policy, "etc_docker_mode", perms["etc_docker"], what, ETC_DOCKER_MODE)
    )
    results.append(_owner_check(policy, "daemon_json_owner", perms["daemon_json"], "daemon.json"))
    results.append(
        _mode_check(
            policy, "daemon_json_mode", perms["daemon_json"], "daemon.json", DAEMON_JSON_MODE
        )
    )
    for name, what, loosest, groups in DAEMON_FILES:
        entry = perms.get(name)
        if name == "containerd_sock" and absent:
            why = "Docker is not installed here"
            results.append(_skipped(name + "_owner", why))
            results.append(_skipped(name + "_mode", why))
            continue
        if entry is None:
            # A fact from an older storage_facts: the file was not looked at.
            results.append(_skipped(name + "_owner", "%s was not examined" % what))
            results.append(_skipped(name + "_mode", "%s was not examined" % what))
            continue
        results.append(_owner_check(policy, name + "_owner", entry, what, groups))
        results.append(_mode_check(policy, name + "_mode", entry, what, loosest))
    return results


def _daemon_json_valid_check(policy, facts):
    """daemon.json's storage keys could be read (``facts["daemon_json"]["problem"]``)."""
    problem = facts["daemon_json"]["problem"]
    return _result(
        policy,
        "daemon_json_valid",
        bool(problem),
        problem or "daemon.json storage keys are readable",
        {"path": facts["daemon_json"]["path"]},
    )


def _flag_conflict_check(policy, facts):
    """No storage setting is given both as a dockerd flag and in daemon.json."""
    conflicts = facts["flags"]["conflicts"]
    return _result(
        policy,
        "flag_conflict",
        bool(conflicts),
        "; ".join(conflicts) or "no storage setting is both a dockerd flag and in daemon.json",
        {"flags": [f["where"] for f in facts["flags"]["findings"]]},
    )


def _skipped_without_docker(facts):
    """The checks of an engine, skipped on a host where Docker is absent, with the reason."""
    why = "Docker is not installed or never ran here: %s" % facts["docker"]["reason"]
    return [
        _skipped(check, why)
        for check in (
            "data_root_partition",
            "containerd_root_partition",
            "aufs_not_used",
            "userns_remap",
            "expected_driver",
            "forbidden_driver",
            "free_inodes",
            "free_bytes",
            "d_type",
            "native_overlay_diff",
            "merged_mounts",
            "layer_depth",
            *HOST_MOUNT_CHECKS,
        )
    ]


def _engine_checks(policy, facts):
    """The checks of a host where Docker is installed or ran: filesystems, drivers, capacity,
    d_type, overlay diff, mounts and layers."""
    results = [
        _partition_check(policy, facts, "data_root_partition", "data_root", "the data-root"),
        _partition_check(
            policy, facts, "containerd_root_partition", "containerd_root", "containerd's root"
        ),
    ]
    drivers = _drivers_in_use(facts)
    results.append(_aufs_check(policy, drivers))
    results.append(_userns_remap_check(policy, facts))
    results.append(_expected_driver_check(policy, drivers))
    results.append(_forbidden_driver_check(policy, drivers))
    results.append(_free_check(policy, facts, "free_inodes", "inodes"))
    results.append(_free_check(policy, facts, "free_bytes", "bytes"))
    results.append(_d_type_check(policy, facts))
    results.append(_native_overlay_diff_check(policy, facts))
    mounts = facts["mounts"]
    results.append(_merged_mounts_check(policy, mounts))
    results.append(_layer_depth_check(policy, mounts))
    results.extend(_host_mount_checks(policy, mounts))
    return results


def _aufs_check(policy, drivers):
    """CIS 2.6: aufs is neither running nor configured."""
    return _result(
        policy,
        "aufs_not_used",
        "aufs" in drivers,
        "aufs is in use or configured: move to overlay2"
        if "aufs" in drivers
        else "aufs is not used",
        {"drivers": drivers},
    )


def _expected_driver_check(policy, drivers):
    """Every driver in use or configured is one the policy expects (skipped when it expects
    none in particular)."""
    expected = policy["expected_drivers"]
    if not expected:
        return _skipped("expected_driver", "the policy expects no particular driver")
    wrong = [name for name in drivers if name not in expected]
    return _result(
        policy,
        "expected_driver",
        bool(wrong),
        "storage driver %s is not one of %s" % (", ".join(wrong), ", ".join(expected))
        if wrong
        else "storage driver is one of %s" % ", ".join(expected),
        {"drivers": drivers, "expected": expected},
    )


def _forbidden_driver_check(policy, drivers):
    """No driver in use or configured is one the policy forbids (aufs aside)."""
    # aufs has a CIS item of its own (2.6): reported there, not twice.
    forbidden = [n for n in drivers if n in policy["forbidden_drivers"] and n != "aufs"]
    return _result(
        policy,
        "forbidden_driver",
        bool(forbidden),
        "forbidden storage driver in use or configured: %s" % ", ".join(forbidden)
        if forbidden
        else "no forbidden storage driver",
        {"drivers": drivers, "forbidden": policy["forbidden_drivers"]},
    )


def _d_type_check(policy, facts):
    """The data-root's backing filesystem supports d_type (skipped when unknown)."""
    backing = facts["support"]["backing_filesystem"]
    if backing["d_type"] is None:
        return _skipped("d_type", "d_type support could not be determined")
    return _result(
        policy,
        "d_type",
        backing["d_type"] is False,
        "%s (%s) %s d_type"
        % (
            facts["support"]["checked_path"],
            backing["type"],
            "supports" if backing["d_type"] else "does not support: overlay2 cannot run on",
        ),
        {"fstype": backing["type"], "mount_point": backing["mount_point"]},
    )


def _native_overlay_diff_check(policy, facts):
    """The engine reports Native Overlay Diff true (skipped when it reports no diff mode)."""
    status = facts["engine"]["driver_status"] or {}
    native = status.get("Native Overlay Diff")
    if native is None:
        return _skipped("native_overlay_diff", "the engine reports no overlay diff mode")
    return _result(
        policy,
        "native_overlay_diff",
        str(native).lower() == "false",
        "Native Overlay Diff: %s%s"
        % (
            native,
            " (image builds and commits compute diffs slowly)"
            if str(native).lower() == "false"
            else "",
        ),
        {"native_overlay_diff": native},
    )


def _merged_mounts_check(policy, mounts):
    """The containers' merged mounts as mounts_info found them (skipped when not checked)."""
    if not mounts["checked"]:
        return _skipped("merged_mounts", mounts["problem"])
    return _result(
        policy,
        "merged_mounts",
        not mounts["ok"],
        "%d container(s), %d with mount problems"
        % (mounts["summary"]["containers"], mounts["summary"]["with_problems"]),
        {"summary": mounts["summary"], "problems": mounts["problems"]},
    )


def _userns_remap_check(policy, facts):
    """CIS 2.9: user namespace remapping on (``facts["userns_remap"]``). Off is a warning, as
    CIS scores it; on, but with a directory the remapped root cannot traverse, a failure:
    dockerd refuses to start there."""
    remap = facts.get("userns_remap")
    if remap is None:
        # A fact from an older storage_facts.
        return _skipped("userns_remap", "user namespace remapping was not examined")
    evidence = {
        key: remap[key]
        for key in ("setting", "configured_in", "engine", "remapped_root", "blocked_by")
    }
    root = remap["remapped_root"]
    ids = "%s:%s" % (remap["uid"], remap["gid"])
    if remap["blocked_by"]:
        # dockerd checks this at every start: with the setting in place, the next start fails.
        result = _result(
            policy,
            "userns_remap",
            True,
            "userns-remap is set (%s), but the remapped root %s (%s) cannot traverse %s: dockerd "
            "refuses to start ('a subdirectory in your graphroot path restricts access to the "
            "remapped root uid/gid'); chmod o+x %s"
            % (
                remap["configured_in"] or "engine",
                root,
                ids,
                remap["blocked_by"],
                remap["blocked_by"],
            ),
            evidence,
        )
        result["status"] = "fail"
        return result
    if not remap["enabled"]:
        return _result(policy, "userns_remap", True, _userns_off_message(remap, facts), evidence)
    where = " (%s)" % remap["configured_in"] if remap["configured_in"] else ""
    message = "user namespace remapping is on%s: the containers' root is %s on the host" % (
        where,
        ids if root else "a subordinate id",
    )
    message += (
        ", and the engine keeps its storage in %s" % root
        if root
        else "; the remapped root is not known: %s" % remap["problem"]
    )
    if _containerd_store_asked(facts):
        message += (
            "; with the containerd image store (features.containerd-snapshotter) each image is "
            "unpacked twice, as pulled and chowned to the remapped root"
        )
    return _result(policy, "userns_remap", False, message, evidence)


def _containerd_store_asked(facts):
    return (
        facts["engine"].get("image_store") == "containerd"
        or facts["daemon_json"].get("containerd_snapshotter") is True
    )


def _userns_off_message(remap, facts):
    if remap["setting"]:
        # Set, but the running engine does not use it yet.
        return (
            "userns-remap is set (%s) but the running engine does not use it: restart dockerd; "
            "it then keeps its storage in %s and starts without the current images and "
            "containers"
            % (remap["configured_in"], remap["remapped_root"] or "<data-root>/<uid>.<gid>")
        )
    return (
        "user namespace remapping is off: the containers' root is root on the host; set "
        'userns-remap ("default" makes dockerd create the user dockremap), and expect the '
        "engine to keep its storage in %s/<uid>.<gid> from then on, without the current images "
        "and containers" % facts["data_root"]
    )


def _layer_depth_check(policy, mounts):
    """Images whose layer chain nears dockerd's 125 (``mounts["deepest_images"]``)."""
    if not mounts["checked"]:
        return _skipped("layer_depth", mounts["problem"])
    if "deepest_images" not in mounts:
        return _skipped("layer_depth", "the images' layers were not examined")
    limit, warn_at = MAX_CHAIN_LAYERS, policy["warn_layer_depth"]
    deep = [image for image in mounts["deepest_images"] if image["layers"] >= warn_at]
    lines = [
        "image %s has %d layers%s"
        % (
            image["image"],
            image["layers"],
            " (dockerd stops at %d per chain, 'max depth exceeded': nothing can be built on "
            "it)" % limit
            if image["layers"] >= limit
            else " (%d more before dockerd's limit of %d)" % (limit - image["layers"], limit),
        )
        for image in deep
    ]
    result = _result(
        policy,
        "layer_depth",
        bool(deep),
        "; ".join(lines) + "; squash it, or build it in fewer steps"
        if deep
        else "no image has %d layers or more" % warn_at,
        {"images": deep, "warn_layer_depth": warn_at, "max_layers": limit},
    )
    if deep and all(image["layers"] < limit for image in deep) and result["status"] == "fail":
        # Near the limit but under it: a warning even where the check fails.
        result["status"] = "warn"
    return result


def _host_mount_checks(policy, mounts):
    """CIS 5.6, 5.20 and 5.32 from the containers' bind mounts (``mounts["host_mounts"]``)."""
    results = []
    for check, what in HOST_MOUNT_CHECKS.items():
        if not mounts["checked"]:
            results.append(_skipped(check, mounts["problem"]))
            continue
        if "host_mounts" not in mounts:
            # A fact from an older storage_facts: the mounts were not looked at.
            results.append(_skipped(check, "the containers' bind mounts were not examined"))
            continue
        found = [f for f in mounts["host_mounts"] if f["check"] == check]
        results.append(
            _result(
                policy,
                check,
                bool(found),
                "; ".join(describe_host_mount(f) for f in found) or "no container mounts %s" % what,
                {"mounts": found},
            )
        )
    return results


def findings(results):
    """The results that are findings (``fail`` or ``warn``)."""
    return [r for r in results if r["status"] in ("fail", "warn")]
