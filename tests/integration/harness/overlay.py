"""Overlay mounts for tests: N lower dirs, an upper, a work dir and the merged view."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

from .commands import CommandError, kernel_messages, run
from .mounts import unmount_tree


class OverlayError(RuntimeError):
    """The overlay mount failed; the message carries mount's and the kernel's words."""


@dataclass
class OverlayMount:
    """A mounted overlay. ``lowers`` is in lowerdir= order: topmost layer first."""

    lowers: list[str]
    upper: str
    work: str
    merged: str
    options: str
    unmounted: bool = field(default=False, init=False)

    def unmount(self) -> None:
        """Unmount whatever lies below merged (deepest first), then the overlay itself."""
        if not self.unmounted:
            unmount_tree(self.merged)
            self.unmounted = True

    def __enter__(self) -> OverlayMount:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.unmount()


def create_overlay(
    base_dir: str | os.PathLike[str], lowers: int | Sequence[str | os.PathLike[str]] = 2
) -> OverlayMount:
    """Mount an overlay in a new directory of ``base_dir`` (created when missing).

    ``lowers``: a number of empty lower dirs to make (lower1 is the topmost .. lowerN), or
    existing directories to stack, topmost first (fill them before mounting: overlayfs does
    not promise to show changes made to a lower layer while it is mounted). upper, work and
    merged are made next to them.
    """
    os.makedirs(base_dir, exist_ok=True)
    root = os.path.realpath(tempfile.mkdtemp(prefix="overlay-", dir=base_dir))
    if isinstance(lowers, int):
        if lowers < 1:
            raise ValueError("an overlay needs at least one lower dir, got %d" % lowers)
        lower_dirs = [os.path.join(root, "lower%d" % n) for n in range(1, lowers + 1)]
        for directory in lower_dirs:
            os.mkdir(directory)
    else:
        lower_dirs = [os.path.realpath(directory) for directory in lowers]
        if not lower_dirs:
            raise ValueError("an overlay needs at least one lower dir, got none")
    upper, work, merged = (os.path.join(root, name) for name in ("upper", "work", "merged"))
    for directory in (upper, work, merged):
        os.mkdir(directory)
    options = "lowerdir=%s,upperdir=%s,workdir=%s" % (":".join(lower_dirs), upper, work)
    try:
        run(["mount", "-t", "overlay", "-o", options, "--", "overlay", merged])
    except CommandError as error:
        reason = kernel_messages("overlayfs:")
        raise OverlayError(
            "overlay mount on %s failed: %s%s"
            % (merged, error, ("\nkernel: " + "\nkernel: ".join(reason)) if reason else "")
        ) from error
    return OverlayMount(lowers=lower_dirs, upper=upper, work=work, merged=merged, options=options)


class OverlayFactory:
    """Makes overlay mounts and unmounts them all at the end."""

    def __init__(self) -> None:
        self.created: list[OverlayMount] = []

    def __call__(
        self,
        base_dir: str | os.PathLike[str],
        lowers: int | Sequence[str | os.PathLike[str]] = 2,
    ) -> OverlayMount:
        mount = create_overlay(base_dir, lowers=lowers)
        self.created.append(mount)
        return mount

    def unmount_all(self) -> None:
        """Unmount every overlay made here, newest first; report all failures at once."""
        failures = []
        for mount in reversed(self.created):
            try:
                mount.unmount()
            except Exception as error:
                failures.append("%s: %s" % (mount.merged, error))
        self.created.clear()
        if failures:
            raise OverlayError("teardown failed:\n" + "\n".join(failures))
