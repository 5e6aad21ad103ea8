# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decide which storage drivers an engine can run on a host, and which it would pick.

Pure functions: they take the evidence gathered about a host (see ``_support.gather_evidence``)
and an engine version, and return verdicts with reasons. The rules follow dockerd's own
graphdriver code per release; see docs/drivers.md for the sources of each rule.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import re

DRIVERS = ("overlay2", "aufs", "btrfs", "zfs", "fuse-overlayfs", "vfs", "overlay", "devicemapper")
# Containerd snapshotters, which the containerd image store takes as storage-driver, and the
# graphdriver with the same kernel and filesystem needs.
SNAPSHOTTERS = {"overlayfs": "overlay2", "native": "vfs", "btrfs": "btrfs", "zfs": "zfs"}

# Verdicts for a host without an engine are given for a current engine.
CURRENT_ENGINE = (29, 0, 0)

# Removed in this release and later (the daemon no longer knows the driver).
REMOVED_IN = {"aufs": (24, 0), "overlay": (24, 0), "devicemapper": (25, 0)}
# Deprecated from this release: never chosen automatically, prior state refuses to start unless
# the driver is set explicitly, explicit use logs a warning.
DEPRECATED_FROM = {"aufs": (23, 0), "overlay": (23, 0), "devicemapper": (23, 0)}
# Added as a built-in driver in this release.
ADDED_IN = {"fuse-overlayfs": (20, 10)}
# The containerd image store is the default for fresh installs from this release.
CONTAINERD_STORE_DEFAULT_FROM = (29, 0)

# Backing filesystems older engines refused for overlay/overlay2 by statfs magic (<= 19.03);
# since 20.10 a real test mount decides.
OVERLAY_LEGACY_INCOMPATIBLE = ("aufs", "ecryptfs", "nfs", "overlay", "zfs")
# Backing filesystems overlay cannot use as upper layer (no xattrs, no d_type, or stacking).
OVERLAY_UPPER_INCOMPATIBLE = (
    "overlay",
    "aufs",
    "nfs",
    "ecryptfs",
    "vfat",
    "cifs",
    "smb2",
    "fuse",
    "proc",
    "sysfs",
)
# Filesystems known to work as overlay's upper layer when d_type is on.
OVERLAY_UPPER_KNOWN_GOOD = ("ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs")
AUFS_INCOMPATIBLE = ("aufs", "btrfs", "ecryptfs")


def parse_engine_version(text):
    """``"20.10.24+dfsg1"`` -> ``(20, 10, 24)``; ``"17.03.2-ce"`` -> ``(17, 3, 2)``.

    Raise ValueError with the text when it holds no version.
    """
    match = re.match(r"\s*v?(\d+)\.(\d+)(?:\.(\d+))?", str(text or ""))
    if not match:
        raise ValueError("engine version %r is not a version such as 20.10.24 or 27.5" % (text,))
    return tuple(int(part or 0) for part in match.groups())


def format_version(version):
    return ".".join(str(part) for part in version[:2])


def graphdriver_for(driver):
    """The graphdriver whose needs apply to a storage-driver value (snapshotters mapped)."""
    return driver if driver in DRIVERS else SNAPSHOTTERS.get(driver, driver)


def priority_list(engine):
    """dockerd's automatic driver order for an engine version tuple."""
    if engine >= (25, 0):
        return ["overlay2", "fuse-overlayfs", "btrfs", "zfs", "vfs"]
    if engine >= (24, 0):
        return ["overlay2", "fuse-overlayfs", "btrfs", "zfs", "devicemapper", "vfs"]
    if engine >= (23, 0):
        return [
            "overlay2",
            "fuse-overlayfs",
            "btrfs",
            "zfs",
            "aufs",
            "overlay",
            "devicemapper",
            "vfs",
        ]
    if engine >= (20, 10):
        return [
            "btrfs",
            "zfs",
            "overlay2",
            "fuse-overlayfs",
            "aufs",
            "overlay",
            "devicemapper",
            "vfs",
        ]
    return ["btrfs", "zfs", "overlay2", "aufs", "overlay", "devicemapper", "vfs"]


def is_removed(driver, engine):
    return driver in REMOVED_IN and engine >= REMOVED_IN[driver]


def is_deprecated(driver, engine):
    return (
        driver in DEPRECATED_FROM
        and engine >= DEPRECATED_FROM[driver]
        and not is_removed(driver, engine)
    )


def _verdict(driver, engine):
    return {
        "supported": True,
        "reasons": [],
        "warnings": [],
        "deprecated": is_deprecated(driver, engine),
        "removed": is_removed(driver, engine),
    }


def _refuse(verdict, reason):
    verdict["supported"] = False
    verdict["reasons"].append(reason)


def _unknown(verdict, reason):
    if verdict["supported"] is not False:
        verdict["supported"] = None
    verdict["reasons"].append(reason)


def _kernel_module_reasons(verdict, support, fs_name):
    """Reasons from how the kernel offers ``fs_name``; also warnings for blacklist lines."""
    if support["how"] == "absent":
        _refuse(
            verdict,
            "the kernel has no %s filesystem (not in /proc/filesystems, not built in, no loadable module)"
            % fs_name,
        )
    elif support["how"] == "unknown":
        _unknown(
            verdict,
            "cannot tell whether the kernel offers %s: it is not in /proc/filesystems, and there is "
            "neither a kernel config nor a /lib/modules listing for this kernel" % fs_name,
        )
    elif support["how"] == "loadable" and support["blocked_by"]:
        _refuse(
            verdict,
            "the %s module is disabled by 'install %s /bin/true' in %s; remove that line"
            % (fs_name, fs_name, ", ".join(support["blocked_by"])),
        )
    if support.get("blacklisted_by"):
        if support["how"] in ("builtin", "loaded"):
            verdict["warnings"].append(
                "%s is blacklisted in %s; it is %s now, but a hardening baseline that blacklists it "
                "breaks Docker on kernels where it is a module"
                % (fs_name, ", ".join(support["blacklisted_by"]), support["how"])
            )
        else:
            verdict["warnings"].append(
                "%s is blacklisted in %s: it will not load on demand; only an explicit modprobe "
                "(as dockerd runs) loads it" % (fs_name, ", ".join(support["blacklisted_by"]))
            )


def _common_reasons(verdict, driver, engine, evidence):
    if is_removed(driver, engine):
        _refuse(
            verdict,
            "%s was removed in Docker Engine %s" % (driver, format_version(REMOVED_IN[driver])),
        )
    if driver in ADDED_IN and engine < ADDED_IN[driver]:
        _refuse(
            verdict,
            "%s is not a built-in driver before Docker Engine %s"
            % (driver, format_version(ADDED_IN[driver])),
        )
    if evidence.get("read_only"):
        _refuse(verdict, "the filesystem at %s is mounted read-only" % evidence.get("mount_point"))
    elif evidence.get("write_error"):
        _refuse(verdict, evidence["write_error"])
    if verdict["deprecated"]:
        verdict["warnings"].append(
            "%s is deprecated since Docker Engine %s and will be removed; migrate to overlay2"
            % (driver, format_version(DEPRECATED_FROM[driver]))
        )


def _overlay_family(verdict, driver, engine, evidence):
    """overlay2 and the legacy overlay: the kernel module, what older engines refused, the
    test mount (or what is known of the backing filesystem), d_type, and overlay2's notes."""
    backing = evidence.get("backing_fs")
    _kernel_module_reasons(verdict, evidence["overlay"], "overlay")
    if engine < (20, 10):
        _legacy_overlay_reasons(verdict, driver, engine, evidence, backing)
    probe = evidence.get("probe")
    if probe and probe.get("overlay_ok") is False:
        _refuse(verdict, "%s on %s" % (probe.get("overlay_error"), backing))
    elif probe and probe.get("overlay_ok") is True:
        pass
    elif backing in OVERLAY_UPPER_INCOMPATIBLE:
        _refuse(verdict, "overlay cannot use a %s filesystem as its upper layer" % backing)
    elif backing in OVERLAY_UPPER_KNOWN_GOOD:
        verdict["warnings"].append("not confirmed by a test mount (probe disabled or not possible)")
    else:
        _unknown(
            verdict, "overlay on %s is untested here: run with probe enabled to find out" % backing
        )
    d_type = evidence.get("d_type")
    if d_type is False:
        _no_d_type_reasons(verdict, driver, engine, evidence, backing)
    elif d_type is None:
        _unknown(
            verdict,
            "d_type support of the backing filesystem is unknown: %s"
            % (evidence.get("d_type_error") or "not probed"),
        )
    if driver == "overlay2":
        for note in native_diff_notes(evidence):
            verdict["warnings"].append(note)
        if not evidence.get("project_quota"):
            verdict["warnings"].append(
                "storage-opt overlay2.size is unavailable: it needs xfs mounted with pquota/prjquota"
                + ("" if backing == "xfs" else " (backing filesystem is %s)" % backing)
            )


def _legacy_overlay_reasons(verdict, driver, engine, evidence, backing):
    """Engines before 20.10 (filesystem lists, not a test mount): the backing filesystems they
    refused, and overlay2's kernel 4.0."""
    if backing in OVERLAY_LEGACY_INCOMPATIBLE:
        _refuse(
            verdict,
            "Docker Engine %s refuses %s on a %s backing filesystem"
            % (format_version(engine), driver, backing),
        )
    kernel = evidence.get("kernel_version")
    if driver == "overlay2" and kernel is not None and kernel < (4, 0, 0):
        _refuse(
            verdict,
            "Docker Engine %s needs kernel 4.0 or newer for overlay2 (found %s)"
            % (format_version(engine), evidence.get("kernel_release")),
        )


def _no_d_type_reasons(verdict, driver, engine, evidence, backing):
    """A backing filesystem without d_type: refused, or a warning where the engine keeps
    running an existing store or predates the refusal."""
    hint = " (xfs needs ftype=1: reformat with mkfs.xfs -n ftype=1)" if backing == "xfs" else ""
    hint = hint or (
        " (ext needs the filetype feature: tune2fs -O filetype)"
        if backing and backing.startswith("ext")
        else ""
    )
    # dockerd before 23.0 keeps running an existing store without d_type (moby #27443:
    # the driver's directory exists and is not empty) and refuses only a new one.
    existing = driver in evidence.get("prior_drivers", ())
    if engine >= (23, 0) or (not existing and (engine >= (17, 12) or driver == "overlay2")):
        _refuse(verdict, "the %s backing filesystem does not support d_type%s" % (backing, hint))
    elif existing:
        verdict["warnings"].append(
            "the backing filesystem does not support d_type%s: dockerd keeps running the "
            "existing %s store there, but refuses a new one, and Docker Engine 23.0 and "
            "later refuse it outright" % (hint, driver)
        )
    else:
        verdict["warnings"].append("the backing filesystem does not support d_type%s" % hint)


def native_diff_notes(evidence):
    """Why dockerd would report "Native Overlay Diff: false" (slower builds, not a blocker)."""
    notes = []
    params = evidence.get("overlay_parameters") or {}
    config = evidence.get("kernel_config") or {}
    redirect = params.get("redirect_dir")
    if redirect is None:
        redirect = "Y" if config.get("CONFIG_OVERLAY_FS_REDIRECT_DIR") == "y" else None
    if redirect in ("Y", "on", "follow", "nofollow"):
        notes.append(
            "Native Overlay Diff is off: overlay redirect_dir is enabled (image builds and commits are slower)"
        )
    if params.get("metacopy") == "Y" or (
        params.get("metacopy") is None and config.get("CONFIG_OVERLAY_FS_METACOPY") == "y"
    ):
        notes.append(
            "Native Overlay Diff is off: overlay metacopy is enabled (image builds and commits are slower)"
        )
    kernel = evidence.get("kernel_version")
    if kernel is not None and kernel < (4, 8, 0):
        notes.append("Native Overlay Diff is off: kernels before 4.8 copy opaque flags up")
    return notes


def evaluate_driver(driver, engine, evidence):
    """Return the verdict dict for one driver on this evidence and engine version tuple."""
    verdict = _verdict(driver, engine)
    _common_reasons(verdict, driver, engine, evidence)
    backing = evidence.get("backing_fs")
    if driver in ("overlay2", "overlay"):
        _overlay_family(verdict, driver, engine, evidence)
    elif driver == "aufs":
        _kernel_module_reasons(verdict, evidence["aufs"], "aufs")
        if backing in AUFS_INCOMPATIBLE:
            _refuse(verdict, "aufs cannot run on a %s backing filesystem" % backing)
    elif driver == "btrfs":
        if backing != "btrfs":
            _refuse(
                verdict, "btrfs needs the data-root on a btrfs filesystem (it is on %s)" % backing
            )
    elif driver == "zfs":
        if backing != "zfs":
            _refuse(verdict, "zfs needs the data-root on a zfs dataset (it is on %s)" % backing)
        if not evidence.get("zfs_device"):
            _refuse(verdict, "/dev/zfs does not exist (zfs kernel module not loaded)")
    elif driver == "fuse-overlayfs":
        fuse = evidence.get("fuse") or {}
        if not fuse.get("binary"):
            _refuse(verdict, "the fuse-overlayfs program is not installed")
        if not fuse.get("available"):
            _refuse(
                verdict, "FUSE is not available (no 'fuse' in /proc/filesystems or no /dev/fuse)"
            )
    elif driver == "devicemapper":
        dm = evidence.get("devicemapper") or {}
        if dm.get("available") is False:
            _refuse(
                verdict,
                "the kernel has no device-mapper (%s)" % dm.get("detail", "dm_mod not present"),
            )
        elif dm.get("available") is None:
            _unknown(verdict, "device-mapper support is unknown: %s" % dm.get("detail"))
        if verdict["supported"] is not False:
            verdict["warnings"].append(
                "devicemapper in loop-lvm mode is for testing only; production needs direct-lvm"
            )
    elif driver == "vfs":
        verdict["warnings"].append(
            "vfs copies every layer in full: slow and large; meant for testing"
        )
    return verdict


def evaluate_drivers(engine, evidence):
    return {driver: evaluate_driver(driver, engine, evidence) for driver in DRIVERS}


def would_pick(engine, evidence, verdicts, containerd_snapshotter=None):
    """What dockerd would do on this data-root with no storage driver set.

    Returns ``{"driver", "image_store", "reason", "warnings"}``; ``driver`` is None when dockerd
    would refuse to start.
    """
    decision = _decide(engine, evidence, verdicts, containerd_snapshotter)
    decision["warnings"] = decision.get("warnings", []) + [
        "%s state in %s is ignored by Docker Engine %s (the driver was removed): its images and "
        "containers will not be visible; migrate them before upgrading"
        % (name, evidence.get("data_root"), format_version(engine))
        for name in evidence.get("prior_drivers", [])
        if is_removed(name, engine)
    ]
    return decision


def _decide(engine, evidence, verdicts, containerd_snapshotter):
    """What dockerd would start with: the prior state of a driver first, then the containerd
    image store where it is asked for or the default, then the priority list."""
    prior = [name for name in evidence.get("prior_drivers", []) if name != "vfs"]
    known = priority_list(engine)
    data_root = evidence.get("data_root")

    for name in known:
        if name in prior:
            return _prior_state_decision(name, engine, verdicts, prior, known, data_root)

    use_containerd = containerd_snapshotter
    if use_containerd is None:
        use_containerd = engine >= CONTAINERD_STORE_DEFAULT_FROM
    if use_containerd:
        return _containerd_store_decision(verdicts, containerd_snapshotter)

    for name in known:
        if is_deprecated(name, engine):
            continue
        if verdicts[name]["supported"] is True:
            return _choice(
                name,
                "graphdriver",
                "first driver in Docker Engine %s's priority list (%s) that works here"
                % (format_version(engine), ", ".join(known)),
            )
        if verdicts[name]["supported"] is None:
            return _refusal(
                "cannot tell: %s comes first in the priority list and its support is unknown (%s)"
                % (name, "; ".join(verdicts[name]["reasons"]))
            )
    return _refusal("no storage driver works here")


def _prior_state_decision(name, engine, verdicts, prior, known, data_root):
    """The decision when ``name``, the first driver of the priority list with prior state in
    the data-root, is found: it wins, unless it is deprecated, cannot run, or another driver
    has state there too."""
    if is_deprecated(name, engine):
        return _refusal(
            "prior state of the deprecated %s driver in %s: dockerd refuses to start until "
            "storage-driver is set explicitly" % (name, data_root)
        )
    verdict = verdicts[name]
    if verdict["supported"] is False:
        return _refusal(
            "prior %s state in %s but %s cannot run here: %s"
            % (name, data_root, name, "; ".join(verdict["reasons"]))
        )
    registered = [other for other in prior if other in known]
    if len(registered) > 1:
        return _refusal(
            "%s contains several drivers' state (%s): dockerd refuses to start until one is "
            "removed or storage-driver is set" % (data_root, ", ".join(sorted(registered)))
        )
    return _choice(
        name,
        "graphdriver",
        "prior %s state in %s wins over the priority list" % (name, data_root),
    )


def _containerd_store_decision(verdicts, containerd_snapshotter):
    """The containerd image store with the overlayfs snapshotter, and why; a warning when
    overlay cannot mount here."""
    if containerd_snapshotter:
        why = "features.containerd-snapshotter is true"
    else:
        why = (
            "Docker Engine %s uses the containerd image store on a fresh data-root"
            % format_version(CONTAINERD_STORE_DEFAULT_FROM)
        )
    # dockerd takes overlayfs without trying it (a real 28.5 on a data-root inside an
    # overlay mount starts, imports, and then fails every container's mount).
    decision = _choice("overlayfs", "containerd", "%s (snapshotter overlayfs)" % why)
    if verdicts["overlay2"]["supported"] is False:
        decision["warnings"] = [
            "the overlayfs snapshotter cannot mount here, so every container will fail to "
            "start (%s): set storage-driver to native, or move the data-root"
            % "; ".join(verdicts["overlay2"]["reasons"])
        ]
    return decision


def _choice(driver, image_store, reason):
    return {"driver": driver, "image_store": image_store, "reason": reason}


def _refusal(reason):
    return _choice(None, "graphdriver", reason)


def recommend(verdicts, evidence):
    """The driver an operator should pin: overlay2 where it works, else the native one."""
    backing = evidence.get("backing_fs")
    order = ["overlay2"]
    if backing == "btrfs":
        order.append("btrfs")
    if backing == "zfs":
        order.append("zfs")
    order += ["fuse-overlayfs", "vfs"]
    for name in order:
        if verdicts[name]["supported"] is True and not verdicts[name]["deprecated"]:
            return name
    return None
