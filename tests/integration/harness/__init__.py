"""Real-host test harness: loop filesystems, overlay mounts, private dockerds, local images.

Fixtures wrapping these live in tests/integration/conftest.py; docs/testing.md describes
them and what this machine can and cannot provide.
"""

from .commands import CommandError, run
from .dockerd import DockerdFactory, EngineAPIError, PrivateDockerd, engine_api
from .images import BOOKWORM_PYTHON, BUSYBOX, LocalImage, import_image
from .loopfs import LoopFilesystem, LoopfsError, LoopfsFactory, create_loopfs
from .mounts import MountEntry, mount_at, mounts_at_or_below, read_mountinfo, unmount_tree
from .overlay import OverlayError, OverlayFactory, OverlayMount, create_overlay

__all__ = [
    "BOOKWORM_PYTHON",
    "BUSYBOX",
    "CommandError",
    "DockerdFactory",
    "EngineAPIError",
    "LocalImage",
    "LoopFilesystem",
    "LoopfsError",
    "LoopfsFactory",
    "MountEntry",
    "OverlayError",
    "OverlayFactory",
    "OverlayMount",
    "PrivateDockerd",
    "create_loopfs",
    "create_overlay",
    "engine_api",
    "import_image",
    "mount_at",
    "mounts_at_or_below",
    "read_mountinfo",
    "run",
    "unmount_tree",
]
