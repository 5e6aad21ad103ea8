# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Gather the evidence about a host that storage-driver verdicts are made from, and build the
report ``driver_support_info`` returns.

Kernel facts are read from files below ``host_root``; the filesystem facts of the data-root
come from the live path (statfs, getdents, an optional real overlay mount).

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _drivers,
    _kernel,
    _mountinfo,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    DEFAULT_SEARCH_PATH,
    find_executable,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError
from ansible_collections.dockerhost.storage.plugins.module_utils._filesystem_probe import (
    DT_UNKNOWN,
    filesystem_name_for_magic,
    probe_directory,
    read_dirent_types,
    statfs_magic,
)

# Names of data-root subdirectories that hold a graphdriver's state.
_PRIOR_STATE_DIRS = (
    "overlay2",
    "aufs",
    "btrfs",
    "zfs",
    "fuse-overlayfs",
    "overlay",
    "devicemapper",
)


def kernel_evidence(host_root="/"):
    """Everything the verdicts need from /proc, /sys, /boot, /etc and /lib/modules."""
    release = _kernel.kernel_release(host_root)
    config, config_source, config_problem = _kernel.read_kernel_config(host_root, release)
    filesystems = _kernel.read_filesystems(host_root)
    return {
        "kernel_release": release,
        "kernel_version": _kernel.parse_kernel_version(release),
        "kernel_config": config,
        "config_source": config_source,
        "config_problem": config_problem,
        "overlay": _kernel.filesystem_support(
            host_root, release, "overlay", "overlay", "CONFIG_OVERLAY_FS", config
        ),
        "aufs": _kernel.filesystem_support(
            host_root, release, "aufs", "aufs", "CONFIG_AUFS_FS", config
        ),
        "overlay_parameters": _kernel.module_parameters(host_root, "overlay"),
        "fuse": {
            "available": "fuse" in filesystems
            and os.path.exists(_kernel.host_path(host_root, "/dev/fuse")),
            "binary": _find_program(host_root, "fuse-overlayfs"),
        },
        "zfs_device": os.path.exists(_kernel.host_path(host_root, "/dev/zfs")),
        "devicemapper": devicemapper_support(host_root, release, config, config_problem),
    }


def _find_program(host_root, name):
    """The host path of program ``name`` in the usual system directories, or None."""
    search_path = [_kernel.host_path(host_root, directory) for directory in DEFAULT_SEARCH_PATH]
    found = find_executable(name, search_path)
    return "/" + os.path.relpath(found, host_root) if found else None


def devicemapper_support(host_root, release, config, config_problem):
    if os.path.isdir(_kernel.host_path(host_root, "/sys/module/dm_mod")):
        return {"available": True, "detail": "dm_mod is loaded"}
    value = config.get("CONFIG_BLK_DEV_DM")
    if value in ("y", "m"):
        return {"available": True, "detail": "CONFIG_BLK_DEV_DM=%s" % value}
    dep = _kernel.modules_listing(host_root, release, "modules.dep") or []
    if any(path.rsplit("/", 1)[-1].startswith("dm-mod.ko") for path in dep):
        return {"available": True, "detail": "dm-mod is a loadable module"}
    if value == "n":
        return {"available": False, "detail": "CONFIG_BLK_DEV_DM is not set in the kernel config"}
    if config_problem:
        return {"available": None, "detail": config_problem}
    return {"available": False, "detail": "dm_mod is neither loaded, built in nor loadable"}


def prior_drivers(data_root):
    """Drivers with non-empty state directories in the data-root (dockerd's prior-driver scan)."""
    found = []
    for name in _PRIOR_STATE_DIRS:
        try:
            if os.listdir(os.path.join(data_root, name)):
                found.append(name)
        except OSError:
            continue
    return found


def filesystem_evidence(checked_path, mounts, probe=True, mount_overlay=True):
    """Backing filesystem facts of an existing directory, from mountinfo, statfs and a probe."""
    real = os.path.realpath(checked_path)
    mount = _mountinfo.mount_for_path(mounts, real)
    magic = statfs_magic(real)
    by_magic = filesystem_name_for_magic(magic)
    fstype = mount.fstype if mount is not None else by_magic
    # ext2/ext3/ext4 share one magic; mountinfo names which one it is.
    backing = fstype if by_magic in ("ext4", "unknown") and fstype else by_magic
    options = _mountinfo.split_options(mount.mount_options) if mount else {}
    super_options = _mountinfo.split_options(mount.super_options) if mount else {}
    quota_flags = {"prjquota", "pquota", "pqnoenforce", "prjquota,"}
    evidence = {
        "backing_fs": backing,
        "magic": "0x%08x" % magic,
        "mount_point": mount.mount_point if mount else None,
        "source": mount.source if mount else None,
        "mount_options": mount.mount_options if mount else None,
        "super_options": mount.super_options if mount else None,
        "read_only": "ro" in options or "ro" in super_options,
        "project_quota": backing == "xfs" and bool(quota_flags & set(super_options)),
        "d_type": None,
        "d_type_error": None,
        "probe": None,
        "write_error": None,
    }
    if probe and not evidence["read_only"]:
        result = probe_directory(real, mount_overlay=mount_overlay)
        evidence["probe"] = result
        evidence["d_type"] = result["d_type"]
        evidence["d_type_error"] = result["d_type_error"] or result["write_error"]
        evidence["write_error"] = result["write_error"]
    elif not probe:
        evidence["d_type"], evidence["d_type_error"] = existing_entries_d_type(real)
    return evidence


def existing_entries_d_type(directory):
    """d_type read from the entries already in ``directory``, without writing anything.

    Returns ``(d_type, problem)``; d_type is None when the directory is empty or unreadable.
    """
    try:
        types = read_dirent_types(directory)
    except OSError as exc:
        return None, "getdents on %s failed: %s" % (directory, exc.strerror or exc)
    if not types:
        return None, "%s is empty and probe is disabled, so d_type was not read" % directory
    return all(value != DT_UNKNOWN for value in types.values()), None


class AssessmentError(StorageError):
    """The data-root's filesystem could not be examined; the message names the path."""


def assess_data_root(
    data_root,
    engine,
    engine_source,
    containerd_snapshotter=None,
    probe=True,
    mountinfo_path="/proc/self/mountinfo",
    host_root="/",
):
    """Judge every driver for ``data_root`` on this host: ``(checked_path, evidence, report)``.

    ``checked_path`` is the nearest existing ancestor of ``data_root``, whose filesystem is
    examined; ``report`` is ``build_report``'s. Raises AssessmentError when mountinfo or the
    filesystem cannot be read.
    """
    checked_path = _mountinfo.nearest_existing_ancestor(data_root)
    try:
        mounts = _mountinfo.read_mountinfo(mountinfo_path)
    except (OSError, ValueError) as exc:
        raise AssessmentError("cannot read %s: %s" % (mountinfo_path, exc)) from None
    evidence = kernel_evidence(host_root)
    try:
        evidence.update(
            filesystem_evidence(
                checked_path,
                mounts,
                probe=probe,
                mount_overlay=evidence["overlay"]["how"] in ("builtin", "loaded"),
            )
        )
    except OSError as exc:
        raise AssessmentError(
            "cannot examine the filesystem of %s: %s" % (checked_path, exc)
        ) from None
    evidence["data_root"] = data_root
    evidence["prior_drivers"] = prior_drivers(data_root)
    report = build_report(engine, engine_source, evidence, containerd_snapshotter)
    return checked_path, evidence, report


def build_report(engine, engine_source, evidence, containerd_snapshotter=None):
    """Verdicts, the would-pick and the recommendation for gathered evidence."""
    verdicts = _drivers.evaluate_drivers(engine, evidence)
    config_problem = evidence.get("config_problem")
    if config_problem:
        for name in ("overlay2", "overlay", "devicemapper"):
            verdicts[name]["warnings"].append("kernel config unknown: " + config_problem)
    if engine_source == "none":
        for verdict in verdicts.values():
            verdict["warnings"].append(
                "no Docker engine found: judged for Docker Engine %s"
                % _drivers.format_version(engine)
            )
    return {
        "drivers": verdicts,
        "would_pick": _drivers.would_pick(engine, evidence, verdicts, containerd_snapshotter),
        "recommended": _drivers.recommend(verdicts, evidence),
    }


def driver_support_result(data_root, data_root_source, engine_info, engine, settings, probe):
    """``driver_support_info``'s result for the data-root (docs/conventions.md has the contract);
    AssessmentError when its filesystem cannot be examined."""
    checked_path, evidence, report = assess_data_root(
        data_root,
        engine,
        engine_info["version_source"],
        containerd_snapshotter=settings["containerd_snapshotter"],
        probe=probe,
    )
    probe_result = evidence.get("probe") or {}
    result = {
        "path": data_root,
        "path_source": data_root_source,
        "checked_path": checked_path,
        "backing_filesystem": {
            "type": evidence["backing_fs"],
            "magic": evidence["magic"],
            "mount_point": evidence["mount_point"],
            "source": evidence["source"],
            "mount_options": evidence["mount_options"],
            "super_options": evidence["super_options"],
            "d_type": evidence["d_type"],
            "project_quota": evidence["project_quota"],
        },
        "kernel": {
            "release": evidence["kernel_release"],
            "config_source": evidence["config_source"],
            "overlay": evidence["overlay"],
            "aufs": evidence["aufs"],
            "overlay_parameters": evidence["overlay_parameters"],
        },
        "engine": dict(engine_info, configured_driver=settings["storage_driver"]),
        "overlay_probe": {
            "attempted": bool(probe_result),
            "ok": probe_result.get("overlay_ok"),
            "error": probe_result.get("overlay_error") or probe_result.get("write_error"),
            "cleanup_error": probe_result.get("cleanup_error"),
        },
        "prior_drivers": evidence["prior_drivers"],
    }
    result.update(report)
    return result
