# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capacity of the filesystems under Docker's data-root: figures as df gives them, thresholds,
whether a data-root would fit on another filesystem, xfs inode ceilings, containerd's root.

The functions at the top are pure (they take statvfs results, mountinfo entries, superblock
bytes or file text); the readers at the bottom (``read_*``, ``run_xfs_info``) touch the live
system and only read.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess

from ansible_collections.dockerhost.storage.plugins.module_utils import _mountinfo
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError

STATUSES = ("ok", "warn", "fail")  # in order of severity

# Defaults: warn below 10% free, fail below 5% free (kubelet evicts at 5% inodes free).
DEFAULT_THRESHOLDS = {
    "inode_warn_percent": 10.0,
    "inode_fail_percent": 5.0,
    "bytes_warn_percent": 10.0,
    "bytes_fail_percent": 5.0,
}

# The margin a target filesystem must have on top of what the data-root uses: a share of the
# used figures, and at least these floors (room for the first pulls and container logs after
# a move, and for the copy's own temporary files).
DEFAULT_MARGIN_PERCENT = 10.0
MARGIN_FLOOR_BYTES = 1 << 30
MARGIN_FLOOR_INODES = 10000

DEFAULT_CONTAINERD_ROOT = "/var/lib/containerd"
DEFAULT_CONTAINERD_CONFIG = "/etc/containerd/config.toml"

# Filesystems that hold no data of their own; a path on one of them cannot be a data-root.
PSEUDO_FILESYSTEMS = frozenset(
    (
        "proc",
        "sysfs",
        "devtmpfs",
        "devpts",
        "cgroup",
        "cgroup2",
        "debugfs",
        "tracefs",
        "securityfs",
        "pstore",
        "bpf",
        "configfs",
        "fusectl",
        "mqueue",
        "hugetlbfs",
        "autofs",
        "binfmt_misc",
        "efivarfs",
        "nsfs",
        "selinuxfs",
        "rpc_pipefs",
    )
)

XFS_MAGIC = b"XFSB"
# Offsets in the xfs primary superblock (struct xfs_dsb, big-endian).
_XFS_BLOCKSIZE = struct.Struct(">I")  # at 4
_XFS_DBLOCKS = struct.Struct(">Q")  # at 8
_XFS_INOPBLOCK = struct.Struct(">H")  # at 106
_XFS_IMAX_PCT_OFFSET = 127
XFS_INODES_PER_CHUNK = 64  # xfs allocates inodes in chunks of 64


class CapacityError(StorageError):
    """Bad input or an unreadable path; the message names the option or path and what to do."""


# ---- figures -------------------------------------------------------------------------------


def _ceil_percent(part, whole):
    """``part`` as a whole percentage of ``whole``, rounded up as df rounds Use% and IUse%."""
    if whole <= 0:
        return None
    return -(-part * 100 // whole)


def _percent(part, whole):
    if whole <= 0:
        return None
    return round(part * 100.0 / whole, 2)


def byte_figures(st):
    """Bytes of a statvfs result as ``df -B1`` computes them.

    ``total`` = f_blocks x f_frsize, ``used`` = (f_blocks - f_bfree) x f_frsize, ``free`` =
    f_bfree x f_frsize (root's reserve included), ``available`` = f_bavail x f_frsize (what an
    unprivileged user may still write). ``used_percent`` is df's Use% (used / (used +
    available), rounded up); ``available_percent`` is available / total, which the thresholds
    judge.
    """
    size = st.f_frsize or st.f_bsize
    total = st.f_blocks * size
    used = (st.f_blocks - st.f_bfree) * size
    available = st.f_bavail * size
    return {
        "total": total,
        "used": used,
        "free": st.f_bfree * size,
        "available": available,
        "used_percent": _ceil_percent(used, used + available),
        "available_percent": _percent(available, total),
    }


def inode_figures(st):
    """Inodes of a statvfs result as ``df -i`` computes them.

    ``total`` = f_files, ``used`` = f_files - f_ffree, ``free`` = f_ffree; ``used_percent`` is
    df's IUse% (rounded up), ``free_percent`` free / total. A filesystem that reports no inode
    count (btrfs: f_files is 0) has ``limited`` false and null percentages.
    """
    if st.f_files == 0:
        return {
            "limited": False,
            "total": 0,
            "used": 0,
            "free": 0,
            "used_percent": None,
            "free_percent": None,
        }
    used = st.f_files - st.f_ffree
    return {
        "limited": True,
        "total": st.f_files,
        "used": used,
        "free": st.f_ffree,
        "used_percent": _ceil_percent(used, st.f_files),
        "free_percent": _percent(st.f_ffree, st.f_files),
    }


# ---- thresholds ----------------------------------------------------------------------------


def validate_thresholds(thresholds):
    """Return the four thresholds as floats, defaults filled in; raise CapacityError naming the
    option when one is outside 0..100 or a fail threshold is above its warn threshold."""
    checked = dict(DEFAULT_THRESHOLDS)
    for name, value in thresholds.items():
        if name not in DEFAULT_THRESHOLDS:
            raise CapacityError("unknown threshold %s" % name)
        if value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise CapacityError(
                "%s must be a number from 0 to 100, got %r" % (name, value)
            ) from None
        if not 0 <= number <= 100:
            raise CapacityError(
                "%s must be from 0 to 100 (a percentage free), got %s" % (name, value)
            )
        checked[name] = number
    for kind in ("inode", "bytes"):
        warn, fail = checked[kind + "_warn_percent"], checked[kind + "_fail_percent"]
        if fail > warn:
            raise CapacityError(
                "%s_fail_percent (%s) is above %s_warn_percent (%s): the fail threshold must be "
                "at or below the warn threshold" % (kind, _number(fail), kind, _number(warn))
            )
    return checked


def _number(value):
    return ("%g" % value) if isinstance(value, float) else str(value)


def threshold_level(free, total, warn_percent, fail_percent, fail_absolute=0):
    """``fail`` when ``free`` is below ``fail_absolute`` or below ``fail_percent`` of
    ``total``, ``warn`` below ``warn_percent``, else ``ok``: the one rule for the thresholds of
    capacity_info, the provision role and the audit.

    Compared in integers scaled by 100 so that the limits are exact to a hundredth of a percent:
    with 4096 inodes and a 10% warn threshold, 409 free warns and 410 does not.
    """
    if free < fail_absolute or free * 10000 < round(fail_percent * 100) * total:
        return "fail"
    if free * 10000 < round(warn_percent * 100) * total:
        return "warn"
    return "ok"


def threshold_status(byte_fig, inode_fig, thresholds):
    """``(status, reasons)`` for one filesystem: the worse of the byte and inode levels.

    Bytes are judged on ``available`` (what is left to unprivileged writers, as kubelet's
    nodefs.available), inodes on ``free``; inodes that are not limited (btrfs) are not judged.
    ``reasons`` has one sentence per figure that is not ``ok``.
    """
    levels = []
    reasons = []
    checks = [
        (
            "bytes",
            byte_fig["available"],
            byte_fig["total"],
            byte_fig["available_percent"],
            "available",
        )
    ]
    if inode_fig["limited"]:
        checks.append(
            ("inode", inode_fig["free"], inode_fig["total"], inode_fig["free_percent"], "free")
        )
    for kind, free, total, percent, word in checks:
        if total <= 0:
            continue
        warn = thresholds[kind + "_warn_percent"]
        fail = thresholds[kind + "_fail_percent"]
        level = threshold_level(free, total, warn, fail)
        levels.append(level)
        if level != "ok":
            limit = fail if level == "fail" else warn
            reasons.append(
                "%s: %s%% %s (%d of %d), below the %s threshold of %s%%"
                % (
                    "inodes" if kind == "inode" else "bytes",
                    _number(percent),
                    word,
                    free,
                    total,
                    level,
                    _number(limit),
                )
            )
    return worst_status(levels), reasons


def worst_status(statuses):
    """The most severe of a list of statuses, ``ok`` for an empty list."""
    worst = "ok"
    for status in statuses:
        if STATUSES.index(status) > STATUSES.index(worst):
            worst = status
    return worst


# ---- mounts --------------------------------------------------------------------------------


def separate_from_root(mount, root_mount):
    """Whether ``mount`` (the Mount holding a path) is another filesystem than the one on ``/``
    (CIS Docker Benchmark 1.1.1: a separate partition for the data-root).

    Devices are compared as mountinfo lists them, so a bind mount of a directory of the root
    filesystem is not separate, and btrfs subvolumes of the root filesystem are not either.
    """
    if mount is None or root_mount is None:
        return None
    return mount.device != root_mount.device


def pseudo_filesystem_problem(path, mount, option):
    """A sentence for a path on a pseudo filesystem (proc, sysfs, ...), else None."""
    if mount is not None and mount.fstype in PSEUDO_FILESYSTEMS:
        return (
            "%s %s is on %s, a %s pseudo filesystem that holds no data; give a directory on a "
            "disk filesystem" % (option, path, mount.mount_point, mount.fstype)
        )
    return None


def filesystem_report(path, role, st, mount, root_mount, thresholds):
    """The report for one examined path: where it lives, df's figures and the status.

    ``st`` is the path's statvfs result, ``mount`` and ``root_mount`` the mountinfo entries
    holding the path and ``/``. The ``xfs`` key is filled in by the caller for xfs.
    """
    byte_fig = byte_figures(st)
    inode_fig = inode_figures(st)
    status, reasons = threshold_status(byte_fig, inode_fig, thresholds)
    return {
        "path": path,
        "role": role,
        "mount_point": mount.mount_point if mount else None,
        "device": mount.source if mount else None,
        "device_number": mount.device if mount else None,
        "fstype": mount.fstype if mount else None,
        "mount_options": mount.mount_options if mount else None,
        "super_options": mount.super_options if mount else None,
        "separate_from_root": separate_from_root(mount, root_mount),
        "bytes": byte_fig,
        "inodes": inode_fig,
        "xfs": None,
        "status": status,
        "reasons": reasons,
    }


# ---- xfs -----------------------------------------------------------------------------------


def parse_xfs_superblock(data):
    """Geometry from the first bytes (at least 128) of an xfs device: a dict with
    ``block_size``, ``data_blocks``, ``inodes_per_block`` and ``imaxpct``; None when the bytes
    are not an xfs superblock."""
    if len(data) < 128 or data[:4] != XFS_MAGIC:
        return None
    return {
        "block_size": _XFS_BLOCKSIZE.unpack_from(data, 4)[0],
        "data_blocks": _XFS_DBLOCKS.unpack_from(data, 8)[0],
        "inodes_per_block": _XFS_INOPBLOCK.unpack_from(data, 106)[0],
        "imaxpct": data[_XFS_IMAX_PCT_OFFSET],
    }


_XFS_INFO_FIELDS = {
    "imaxpct": re.compile(r"\bimaxpct=(\d+)"),
    "block_size": re.compile(r"^data\s*=\s*bsize=(\d+)", re.MULTILINE),
    "data_blocks": re.compile(r"^data\s*=\s*bsize=\d+\s+blocks=(\d+)", re.MULTILINE),
    "inode_size": re.compile(r"\bisize=(\d+)"),
}


def parse_xfs_info(text):
    """The same geometry as parse_xfs_superblock from ``xfs_info`` output (LANG=C); None
    when imaxpct is not in it."""
    found = {}
    for key, pattern in _XFS_INFO_FIELDS.items():
        match = pattern.search(text)
        found[key] = int(match.group(1)) if match else None
    if found["imaxpct"] is None:
        return None
    inodes_per_block = None
    if found["block_size"] and found["inode_size"]:
        inodes_per_block = found["block_size"] // found["inode_size"]
    return {
        "block_size": found["block_size"],
        "data_blocks": found["data_blocks"],
        "inodes_per_block": inodes_per_block,
        "imaxpct": found["imaxpct"],
    }


def xfs_inode_ceiling(geometry):
    """The most inodes xfs will ever allocate: imaxpct percent of the data blocks, in whole
    inode chunks (as the kernel's m_maxicount). None when imaxpct is 0 (no limit but space)
    or the geometry is incomplete."""
    if not geometry or not geometry.get("imaxpct"):
        return None
    blocks = geometry.get("data_blocks")
    per_block = geometry.get("inodes_per_block")
    if not blocks or not per_block:
        return None
    chunk_blocks = max(1, XFS_INODES_PER_CHUNK // per_block)
    ceiling_blocks = blocks * geometry["imaxpct"] // 100
    return ceiling_blocks // chunk_blocks * chunk_blocks * per_block


def xfs_inode_facts(geometry, source):
    """The ``xfs`` entry of a filesystem's report: inodes on demand, imaxpct and its ceiling."""
    return {
        "inodes_on_demand": True,
        "imaxpct": geometry.get("imaxpct") if geometry else None,
        "inode_ceiling": xfs_inode_ceiling(geometry),
        "geometry_source": source,
    }


# ---- target fit ----------------------------------------------------------------------------


def fit_on_target(used_bytes, used_inodes, target_bytes, target_inodes, margin_percent):
    """Would a tree using ``used_bytes`` and ``used_inodes`` fit on a filesystem with
    ``target_bytes`` available and ``target_inodes`` free (None: inodes not limited)?

    The need is the used figures plus a margin: ``margin_percent`` of them, and at least
    MARGIN_FLOOR_BYTES and MARGIN_FLOOR_INODES. Returns a dict with ``fits``, ``need`` and
    ``margin`` (each ``{"bytes", "inodes"}``) and ``reasons`` (why it does not fit).
    """
    margin_bytes = max(int(used_bytes * margin_percent / 100), MARGIN_FLOOR_BYTES)
    margin_inodes = max(int(used_inodes * margin_percent / 100), MARGIN_FLOOR_INODES)
    need_bytes = used_bytes + margin_bytes
    need_inodes = used_inodes + margin_inodes
    reasons = []
    if target_bytes < need_bytes:
        reasons.append(
            "needs %d bytes (%d used + %d margin), the target has %d available"
            % (need_bytes, used_bytes, margin_bytes, target_bytes)
        )
    if target_inodes is not None and target_inodes < need_inodes:
        reasons.append(
            "needs %d inodes (%d used + %d margin), the target has %d free"
            % (need_inodes, used_inodes, margin_inodes, target_inodes)
        )
    return {
        "fits": not reasons,
        "need": {"bytes": need_bytes, "inodes": need_inodes},
        "margin": {"percent": margin_percent, "bytes": margin_bytes, "inodes": margin_inodes},
        "reasons": reasons,
    }


# ---- containerd ----------------------------------------------------------------------------

_TOML_ROOT = re.compile(
    r"""^\s*(?:root|"root"|'root')\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)')\s*(?:#.*)?$"""
)
_TOML_TABLE = re.compile(r"^\s*\[")


def parse_containerd_root(text):
    """The top-level ``root = "..."`` of a containerd config.toml, or None.

    Only the top-level key counts: a ``root`` inside a table (``[plugins...]``) is another
    setting. The key may be quoted; basic and literal strings are read; anything else is
    ignored, as are lines this small reader does not understand.
    """
    # TOML ends lines at LF (CRLF) only; splitlines() would also split inside a comment.
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if _TOML_TABLE.match(line):
            return None
        match = _TOML_ROOT.match(line)
        if match:
            if match.group(1) is not None:
                return re.sub(r"\\(.)", r"\1", match.group(1))
            return match.group(2)
    return None


# ---- readers of the live system ------------------------------------------------------------


def read_containerd_root(config_path=DEFAULT_CONTAINERD_CONFIG):
    """``(root, source)``: containerd's root from its config file, else the default.

    ``source`` is the config file's path or ``default``. An unreadable file counts as absent.
    """
    try:
        with open(config_path, encoding="utf-8", errors="replace") as handle:
            root = parse_containerd_root(handle.read())
    except OSError:
        root = None
    if root and os.path.isabs(root):
        return os.path.normpath(root), config_path
    return DEFAULT_CONTAINERD_ROOT, "default"


def read_xfs_superblock(device):
    """Geometry from the primary superblock of an xfs block device, or None when it cannot be
    read (not root, not a block device, not xfs)."""
    try:
        with open(device, "rb") as handle:
            return parse_xfs_superblock(handle.read(512))
    except OSError:
        return None


def run_xfs_info(mount_point):
    """Geometry from ``xfs_info <mount point>`` (xfsprogs), or None when it is not installed
    or fails."""
    for directory in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        program = os.path.join(directory, "xfs_info")
        if os.access(program, os.X_OK):
            break
    else:
        return None
    try:
        completed = subprocess.run(
            [program, mount_point],
            capture_output=True,
            text=True,
            timeout=30,
            env=dict(os.environ, LANG="C", LC_ALL="C"),
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    return parse_xfs_info(completed.stdout)


def read_xfs_geometry(device, mount_point):
    """``(geometry, source)`` for an xfs filesystem: the superblock on ``device`` when
    readable, else ``xfs_info``; ``(None, None)`` when neither works."""
    if device and device.startswith("/dev/"):
        geometry = read_xfs_superblock(device)
        if geometry:
            return geometry, "superblock"
    geometry = run_xfs_info(mount_point)
    if geometry:
        return geometry, "xfs_info"
    return None, None


def examine_filesystem(path, role, mount, mounts, thresholds):
    """The filesystem entry of ``path`` on ``mount``: statvfs now, and xfs geometry when it is
    xfs. Reads the live system; CapacityError when the filesystem cannot be read."""
    try:
        st = os.statvfs(path)
    except OSError as exc:
        raise CapacityError(
            "cannot read the filesystem of %s: %s" % (path, exc.strerror or exc)
        ) from None
    root_mount = _mountinfo.mount_for_path(mounts, "/")
    entry = filesystem_report(path, role, st, mount, root_mount, thresholds)
    if entry["fstype"] == "xfs":
        geometry, source = read_xfs_geometry(entry["device"], entry["mount_point"])
        entry["xfs"] = xfs_inode_facts(geometry, source)
    return entry
