"""Real filesystems for tests: sparse image file, loop device, mkfs, mount; or a tmpfs or ramfs.

    with create_loopfs(workdir, "ext4", inodes=4096) as fs:
        os.statvfs(fs.mount_point).f_files  # 4096

Teardown unmounts everything at or below the mount point first (deepest first: dockerd leaves
its data-root bind-mounted onto itself), then detaches the loop device and deletes the image.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .commands import CommandError, kernel_messages, run
from .mounts import mounts_at_or_below, unmount_tree

# Sizes cost nothing on disk (sparse images); xfsprogs >= 5.19 refuses filesystems < 300 MB.
# ramfs has no size limit (and no extended attributes at all): size_mb is not used for it.
DEFAULT_SIZE_MB = {"ext4": 256, "ext2": 256, "xfs": 320, "btrfs": 256, "tmpfs": 256, "ramfs": 0}
FSTYPES = tuple(DEFAULT_SIZE_MB)


class LoopfsError(RuntimeError):
    """A filesystem could not be made or mounted; the message says which step and why."""


@dataclass
class LoopFilesystem:
    """A mounted test filesystem. Paths are strings, as a module's results give them."""

    fstype: str
    mount_point: str
    device: str | None  # /dev/loopN; None for tmpfs and ramfs
    image_path: str | None  # the sparse image file; None for tmpfs and ramfs
    size_mb: int
    mount_options: tuple[str, ...] = ()
    workdir: str = ""
    destroyed: bool = field(default=False, init=False)

    def destroy(self) -> None:
        """Unmount everything at or below the mount point, detach the loop device, delete
        the image. Safe to call more than once."""
        if self.destroyed:
            return
        unmount_tree(self.mount_point)
        if self.device:
            detach_loop_device(self.device, self.image_path)
        if mounts_at_or_below(self.workdir):
            raise LoopfsError("mounts remain below %s after teardown" % self.workdir)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.destroyed = True

    def __enter__(self) -> LoopFilesystem:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()


def loop_backing_file(device: str) -> str | None:
    """The file attached to a loop device, or None when the device is free."""
    name = os.path.basename(device)
    try:
        with open("/sys/block/%s/loop/backing_file" % name, encoding="utf-8") as handle:
            return handle.read().strip()
    except FileNotFoundError:
        return None


def detach_loop_device(device: str, image_path: str | None) -> None:
    """Detach ``device`` if it still holds ``image_path`` (it may have been reused since)."""
    backing = loop_backing_file(device)
    if backing is None:
        return
    if image_path and os.path.realpath(backing.removesuffix(" (deleted)")) != os.path.realpath(
        image_path
    ):
        return
    # On a device that is still busy (a lazily detached mount), the kernel sets autoclear
    # instead, and the device frees itself when the last user goes away.
    run(["losetup", "--detach", device])


def _mkfs_argv(
    fstype: str,
    image: str,
    inodes: int | None,
    features: Sequence[str] | None,
    mkfs_args: Sequence[str],
) -> list[str]:
    if fstype in ("ext4", "ext2"):
        # "-T default" keeps 4 KiB blocks and 256-byte inodes on small images, as on real
        # disks; mke2fs would otherwise pick its "small" profile (1 KiB blocks).
        argv = ["mkfs." + fstype, "-q", "-F", "-T", "default"]
        if inodes is not None:
            argv += ["-N", str(inodes)]
        if features:
            argv += ["-O", ",".join(features)]
        return argv + list(mkfs_args) + [image]
    if inodes is not None:
        raise ValueError(
            "inodes is an ext2/ext4 and tmpfs option; %s allocates inodes on demand "
            "(xfs: pass mkfs_args=('-i', 'maxpct=N'))" % fstype
        )
    if fstype == "xfs":
        if features:
            raise ValueError("xfs has no -O features; pass mkfs_args such as ('-n', 'ftype=1')")
        return ["mkfs.xfs", "-q", "-f"] + list(mkfs_args) + [image]
    if fstype == "btrfs":
        argv = ["mkfs.btrfs", "-q", "-f"]
        if features:
            argv += ["-O", ",".join(features)]
        return argv + list(mkfs_args) + [image]
    raise ValueError("unsupported fstype %r: choose from %s" % (fstype, ", ".join(FSTYPES)))


def create_loopfs(
    workdir: str | os.PathLike[str],
    fstype: str,
    size_mb: int | None = None,
    inodes: int | None = None,
    features: Iterable[str] | None = None,
    mkfs_args: Sequence[str] = (),
    mount_options: Sequence[str] = (),
) -> LoopFilesystem:
    """Make and mount a ``fstype`` filesystem of ``size_mb`` in a new directory of ``workdir``.

    ``fstype``: ext4, ext2, xfs, btrfs (loop-backed), tmpfs or ramfs. ``inodes``: ext2/ext4 inode
    count (mke2fs ``-N``; rounded up to fill whole inode-table blocks) or tmpfs ``nr_inodes``.
    ``features``: ext ``-O`` list such as ``["^filetype"]``, or btrfs ``-O``. ``mkfs_args``
    go to mkfs as they are; ``mount_options`` to ``mount -o``. Raises LoopfsError, having
    undone every step, when mkfs or mount fails (for example xfs V4 on a kernel without
    CONFIG_XFS_SUPPORT_V4; the kernel's own reason is in the message).
    """
    if fstype not in FSTYPES:
        raise ValueError("unsupported fstype %r: choose from %s" % (fstype, ", ".join(FSTYPES)))
    size_mb = size_mb or DEFAULT_SIZE_MB[fstype]
    features = list(features) if features is not None else None
    os.makedirs(workdir, exist_ok=True)
    root = os.path.realpath(tempfile.mkdtemp(prefix=fstype + "-", dir=workdir))
    mount_point = os.path.join(root, "mnt")
    os.mkdir(mount_point)
    fs = LoopFilesystem(
        fstype=fstype,
        mount_point=mount_point,
        device=None,
        image_path=None,
        size_mb=size_mb,
        mount_options=tuple(mount_options),
        workdir=root,
    )
    try:
        if fstype == "tmpfs":
            if features or mkfs_args:
                raise ValueError("tmpfs takes no features or mkfs_args; use mount_options")
            options = ["size=%dm" % size_mb]
            if inodes is not None:
                options.append("nr_inodes=%d" % inodes)
            _mount("tmpfs", "tmpfs", mount_point, options + list(mount_options))
            return fs
        if fstype == "ramfs":
            if features or mkfs_args or inodes is not None:
                raise ValueError("ramfs takes no features, mkfs_args or inodes; use mount_options")
            _mount("ramfs", "ramfs", mount_point, list(mount_options))
            return fs
        argv = _mkfs_argv(fstype, os.path.join(root, "image"), inodes, features, mkfs_args)
        fs.image_path = os.path.join(root, "image")
        with open(fs.image_path, "wb") as image:
            image.truncate(size_mb * 1024 * 1024)
        run(argv)
        fs.device = run(["losetup", "--find", "--show", "--", fs.image_path]).stdout.strip()
        _mount(fstype, fs.device, mount_point, list(mount_options))
        return fs
    except BaseException as error:
        try:
            fs.destroy()
        except Exception as cleanup_error:  # keep the original error first
            error.add_note("cleanup after the failure also failed: %s" % cleanup_error)
        if isinstance(error, CommandError):
            raise LoopfsError("making a %s filesystem failed: %s" % (fstype, error)) from error
        raise


def _mount(fstype: str, source: str, mount_point: str, options: list[str]) -> None:
    argv = ["mount", "-t", fstype]
    if options:
        argv += ["-o", ",".join(options)]
    argv += ["--", source, mount_point]
    completed = run(argv, check=False)
    if completed.returncode != 0:
        reason = kernel_messages(os.path.basename(source)) if source.startswith("/dev/") else []
        raise LoopfsError(
            "mount -t %s%s %s failed: %s%s"
            % (
                fstype,
                (" -o " + ",".join(options)) if options else "",
                source,
                completed.stderr.strip().splitlines()[0] if completed.stderr.strip() else "",
                ("\nkernel: " + "\nkernel: ".join(reason)) if reason else "",
            )
        )


class LoopfsFactory:
    """Makes filesystems under one work directory and destroys them all at the end."""

    def __init__(self, workdir: str | os.PathLike[str]):
        self.workdir = os.fspath(workdir)
        self.created: list[LoopFilesystem] = []

    def __call__(
        self,
        fstype: str,
        size_mb: int | None = None,
        inodes: int | None = None,
        features: Iterable[str] | None = None,
        mkfs_args: Sequence[str] = (),
        mount_options: Sequence[str] = (),
    ) -> LoopFilesystem:
        fs = create_loopfs(
            self.workdir,
            fstype,
            size_mb=size_mb,
            inodes=inodes,
            features=features,
            mkfs_args=mkfs_args,
            mount_options=mount_options,
        )
        self.created.append(fs)
        return fs

    def destroy_all(self) -> None:
        """Destroy every filesystem made here, newest first; report all failures at once."""
        failures = []
        for fs in reversed(self.created):
            try:
                fs.destroy()
            except Exception as error:
                failures.append("%s at %s: %s" % (fs.fstype, fs.mount_point, error))
        self.created.clear()
        if failures:
            raise LoopfsError("teardown failed:\n" + "\n".join(failures))
