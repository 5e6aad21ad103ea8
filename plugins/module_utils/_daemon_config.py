# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Change the storage keys of daemon.json and check the result before it is written.

Pure functions: merge the wanted storage settings into a parsed daemon.json (every other key
and the order of keys survive), render the text, and judge the storage options, the driver
and the data-root for an engine version. The rules follow dockerd's graphdriver code per
release; docs/drivers.md names the sources.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import copy
import json
import os
import re

from ansible_collections.dockerhost.storage.plugins.module_utils import _drivers, _mountinfo
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError

# The keys this module manages, as daemon.json spells them; ``remove`` takes these names.
MANAGED_KEYS = ("storage-driver", "storage-opts", "data-root", "containerd-snapshotter")
SNAPSHOTTER_PATH = ("features", "containerd-snapshotter")

# Storage option keys each driver accepts (dockerd lower-cases the key before matching).
# devicemapper accepts every "dm." key it knows; its list is long and release-specific, so
# only the prefix is checked here and dockerd --validate (23.0+) or the start does the rest.
DRIVER_OPTIONS = {
    "overlay2": ("overlay2.size",),
    "btrfs": ("btrfs.min_space",),
    "zfs": ("zfs.fsname",),
    "vfs": ("size",),
    "overlay": (),
    "aufs": (),
    "fuse-overlayfs": (),
}
OPTION_PREFIXES = {"devicemapper": "dm."}
# Option keys a driver accepted until a release: (driver, release that refuses them).
RETIRED_OPTIONS = {"overlay2.override_kernel_check": ("overlay2", (24, 0))}
# Options that take a size, parsed as dockerd's units.RAMInBytes does.
SIZE_OPTIONS = ("overlay2.size", "btrfs.min_space", "size")
# Size limits dockerd enforces with xfs project quota (its quota code knows only xfs).
QUOTA_OPTIONS = ("overlay2.size", "size")
_SIZE = re.compile(r"^\d+(\.\d+)?\s*([kKmMgGtTpP][iI]?)?[bB]?$")
# Storage options whose driver is named by the key's prefix, for clearer refusals.
_OPTION_OWNER = {"overlay2.": "overlay2", "dm.": "devicemapper", "btrfs.": "btrfs", "zfs.": "zfs"}
# Snapshotter names the containerd image store takes as storage-driver.
SNAPSHOTTERS = _drivers.SNAPSHOTTERS
# Pseudo-filesystems and runtime directories that must never hold the data-root.
FORBIDDEN_DATA_ROOT_PARENTS = _mountinfo.PSEUDO_FILESYSTEM_ROOTS


class DaemonConfigError(StorageError):
    """The wanted settings cannot be written; the message names the key and the reason."""


def get_snapshotter(config):
    """``features.containerd-snapshotter`` of a parsed daemon.json, or None when unset."""
    features = config.get("features")
    if isinstance(features, dict):
        return features.get("containerd-snapshotter")
    return None


def merge_storage_keys(config, wanted, remove=()):
    """Return ``(new_config, changed_keys)`` with the storage keys of ``wanted`` merged in.

    ``wanted`` maps ``storage-driver``, ``storage-opts``, ``data-root`` and
    ``containerd-snapshotter`` to a value, or to None to leave the key as it is. ``remove``
    lists keys to delete. ``config`` is not modified; in the copy every other key keeps its
    value and position, a new key is appended at the end, and the snapshotter setting is
    merged into the ``features`` object (which is dropped only when the removal leaves it
    empty). An empty ``storage-opts`` list means no options: the key is removed.
    """
    both = sorted(set(remove) & {key for key, value in wanted.items() if value is not None})
    if both:
        raise DaemonConfigError("%s is both set and listed in remove: choose one" % ", ".join(both))
    new = copy.deepcopy(config)
    changed = []
    for key in MANAGED_KEYS:
        value = wanted.get(key)
        drop = key in remove or (key == "storage-opts" and value == [])
        if key == "containerd-snapshotter":
            before = get_snapshotter(new)
            if drop and before is not None:
                _remove_snapshotter(new)
                changed.append("features.containerd-snapshotter")
            elif value is not None and value != before:
                features = new.get("features")
                if features is None:
                    new["features"] = features = {}
                elif not isinstance(features, dict):
                    raise DaemonConfigError(
                        "features in daemon.json is %s, not an object: fix the file"
                        % json.dumps(features)
                    )
                features["containerd-snapshotter"] = value
                changed.append("features.containerd-snapshotter")
            continue
        if drop:
            if key in new:
                del new[key]
                changed.append(key)
        elif value is not None and new.get(key) != value:
            new[key] = value
            changed.append(key)
    return new, changed


def changed_storage_keys(before, after):
    """The managed keys whose values differ between two parsed configurations, in the order
    of MANAGED_KEYS (the snapshotter as ``features.containerd-snapshotter``)."""
    changed = []
    for key in MANAGED_KEYS:
        if key == "containerd-snapshotter":
            if get_snapshotter(before) != get_snapshotter(after):
                changed.append("features.containerd-snapshotter")
        elif before.get(key) != after.get(key):
            changed.append(key)
    return changed


def _remove_snapshotter(config):
    features = config["features"]
    del features["containerd-snapshotter"]
    if not features:
        del config["features"]


def render_daemon_json(config):
    """daemon.json text: two-space indent, keys in their order, UTF-8 kept, trailing newline."""
    return json.dumps(config, indent=2, ensure_ascii=False) + "\n"


def check_key_types(config, path):
    """Raise DaemonConfigError when a storage key of the file has the wrong JSON type."""
    for key, wanted, name in (
        ("storage-driver", str, "a string"),
        ("data-root", str, "a string"),
        ("storage-opts", list, "an array of strings"),
        ("features", dict, "an object"),
    ):
        value = config.get(key)
        if value is not None and not isinstance(value, wanted):
            raise DaemonConfigError(
                "%s: key %s must be %s, found %s; dockerd would refuse to start: fix the file"
                % (path, key, name, json.dumps(value))
            )
    opts = config.get("storage-opts") or []
    if any(not isinstance(item, str) for item in opts):
        raise DaemonConfigError(
            "%s: every item of storage-opts must be a string, found %s: fix the file"
            % (path, json.dumps(opts))
        )
    snapshotter = get_snapshotter(config)
    if snapshotter is not None and not isinstance(snapshotter, bool):
        raise DaemonConfigError(
            "%s: features.containerd-snapshotter must be true or false, found %s: fix the file"
            % (path, json.dumps(snapshotter))
        )


def check_storage_driver(driver, engine, containerd_snapshotter=None):
    """Raise DaemonConfigError unless ``driver`` is a driver Docker Engine ``engine`` knows."""
    if driver in SNAPSHOTTERS and driver not in _drivers.DRIVERS:
        if containerd_snapshotter:
            return
        raise DaemonConfigError(
            "storage-driver: %s is a containerd snapshotter; it is a valid storage-driver only "
            "with features.containerd-snapshotter true (the graphdriver is %s)"
            % (driver, SNAPSHOTTERS[driver])
        )
    if driver not in _drivers.DRIVERS:
        raise DaemonConfigError(
            "storage-driver: %r is not a storage driver; known drivers are %s"
            % (driver, ", ".join(_drivers.DRIVERS))
        )
    if _drivers.is_removed(driver, engine):
        raise DaemonConfigError(
            "storage-driver: %s was removed in Docker Engine %s and this engine is %s; choose "
            "another driver (and migrate the images and containers first)"
            % (
                driver,
                _drivers.format_version(_drivers.REMOVED_IN[driver]),
                _drivers.format_version(engine),
            )
        )


graphdriver_for = _drivers.graphdriver_for


def check_storage_opts(opts, driver, engine, backing=None):
    """Raise DaemonConfigError for the first storage option ``driver`` would refuse.

    ``backing`` is the filesystem evidence of the data-root (``backing_fs``,
    ``project_quota``, ``mount_point``) when known; without it the quota rule of
    ``overlay2.size`` and vfs's ``size`` is not checked. Returns a list of warnings.
    """
    warnings = []
    driver = graphdriver_for(driver)
    for option in opts:
        key, equals, value = option.partition("=")
        key = key.strip().lower()
        if not equals or not key:
            raise DaemonConfigError(
                "storage-opts: %r is not of the form key=value, such as overlay2.size=20G" % option
            )
        retired = RETIRED_OPTIONS.get(key)
        if retired and retired[0] == driver:
            if engine >= retired[1]:
                raise DaemonConfigError(
                    "storage-opts: %s was removed in Docker Engine %s and dockerd %s refuses to "
                    "start with it; remove the option"
                    % (key, _drivers.format_version(retired[1]), _drivers.format_version(engine))
                )
            warnings.append(
                "storage-opts: %s has no effect and Docker Engine %s and later refuse to start "
                "with it; remove the option" % (key, _drivers.format_version(retired[1]))
            )
            continue
        if not _option_known(driver, key):
            raise DaemonConfigError(
                "storage-opts: %s is not an option of the %s driver%s; dockerd refuses to start "
                "with it (%s: unknown option). %s accepts %s"
                % (key, driver, _owner_note(key, driver), driver, driver, _accepted(driver))
            )
        if key in SIZE_OPTIONS and not _SIZE.match(value.strip()):
            raise DaemonConfigError(
                "storage-opts: %s=%s is not a size such as 20G or 512M" % (key, value)
            )
        if key in QUOTA_OPTIONS:
            warnings += _check_quota_option(key, backing)
        if key == "zfs.fsname" and not value.strip():
            raise DaemonConfigError("storage-opts: zfs.fsname needs a dataset name")
    return warnings


def _check_quota_option(key, backing):
    """Raise DaemonConfigError when the size option ``key`` needs a project quota that the
    data-root's filesystem (``backing``) lacks. Returns a list of warnings: the rule is not
    checked without ``backing``."""
    if backing is None:
        return [
            "storage-opts: %s needs the data-root on xfs mounted with pquota; not checked "
            "because support_check is false" % key
        ]
    fstype = backing.get("backing_fs")
    if fstype != "xfs" or not backing.get("project_quota"):
        raise DaemonConfigError(
            "storage-opts: %s needs the data-root on xfs mounted with pquota (prjquota), "
            "but %s is %s mounted with %s; dockerd refuses to start (no project quota). "
            "Mount the filesystem with -o pquota or remove the option"
            % (
                key,
                backing.get("mount_point") or "the data-root's filesystem",
                fstype,
                backing.get("super_options") or "no quota option",
            )
        )
    return []


def _option_known(driver, key):
    prefix = OPTION_PREFIXES.get(driver)
    if prefix:
        return key.startswith(prefix) and len(key) > len(prefix)
    return key in DRIVER_OPTIONS.get(driver, ())


def _owner_note(key, driver):
    for prefix, owner in _OPTION_OWNER.items():
        if key.startswith(prefix) and owner != driver:
            return " (it belongs to %s)" % owner
    return ""


def _accepted(driver):
    if driver in OPTION_PREFIXES:
        return "%s* options" % OPTION_PREFIXES[driver]
    accepted = DRIVER_OPTIONS.get(driver, ())
    if not accepted:
        return "no options"
    if driver == "overlay2":
        return "only overlay2.size, and only on xfs mounted with pquota"
    return "only " + ", ".join(accepted)


def check_data_root(data_root, lexists=os.path.lexists, readlink=os.readlink):
    """Return the normalised data-root; raise DaemonConfigError when dockerd should not use it.

    It must be absolute, not under /proc, /sys, /dev or /run, and no part of it may be a
    symbolic link: dockerd resolves links when it starts, so the data-root in force would not
    be the one written (and a link's target can change under the daemon).
    """
    if not isinstance(data_root, str) or not os.path.isabs(data_root) or "\0" in data_root:
        raise DaemonConfigError(
            "data-root: %r is not an absolute path; give a path such as /srv/docker" % data_root
        )
    path = os.path.normpath(data_root)
    if path == "/":
        raise DaemonConfigError("data-root: / cannot be the data-root; give a directory")
    for parent in FORBIDDEN_DATA_ROOT_PARENTS:
        if path == parent or path.startswith(parent + "/"):
            raise DaemonConfigError(
                "data-root: %s is under %s, which is %s; choose a directory on persistent "
                "storage such as /var/lib/docker or /srv/docker"
                % (
                    path,
                    parent,
                    "a tmpfs that is lost at reboot"
                    if parent == "/run"
                    else "a kernel pseudo-filesystem",
                )
            )
    current = "/"
    for part in path.strip("/").split("/"):
        current = os.path.join(current, part)
        if not lexists(current):
            break
        try:
            target = readlink(current)
        except OSError:
            continue
        raise DaemonConfigError(
            "data-root: %s is reached through the symbolic link %s -> %s, and dockerd would use "
            "the link's target instead; give the real path" % (path, current, target)
        )
    if lexists(path) and not os.path.isdir(path):
        raise DaemonConfigError(
            "data-root: %s exists and is not a directory; give a directory" % path
        )
    return path


def needs_store_pin(engine, old_data_root, new_data_root, config, snapshotter_given):
    """True when writing ``new_data_root`` could silently switch the image store.

    From Docker Engine 29 a fresh data-root gets the containerd image store unless the storage
    driver or ``features.containerd-snapshotter`` is set. So when data-root changes on such an
    engine, with neither in the resulting ``config`` and the snapshotter not given by the user,
    the store must be pinned.
    """
    if engine < _drivers.CONTAINERD_STORE_DEFAULT_FROM:
        return False
    if os.path.normpath(old_data_root or "") == os.path.normpath(new_data_root or ""):
        return False
    if snapshotter_given or get_snapshotter(config) is not None:
        return False
    return not config.get("storage-driver")


def store_pin(running_driver, running_on_containerd, recommended):
    """The setting that keeps the image store in use: ``(key, value, reason)`` or None.

    An engine on the containerd store keeps it with the snapshotter feature; an engine on a
    graphdriver keeps that driver; without a running engine the recommended driver is pinned.
    """
    if running_on_containerd:
        return (
            "containerd-snapshotter",
            True,
            "the running engine uses the containerd image store",
        )
    if running_driver and running_driver in _drivers.DRIVERS:
        return ("storage-driver", running_driver, "the running engine uses %s" % running_driver)
    if recommended:
        return (
            "storage-driver",
            recommended,
            "%s is the driver recommended for the new data-root" % recommended,
        )
    return None
