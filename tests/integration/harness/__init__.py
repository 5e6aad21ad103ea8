"""Real-host test harness: loop filesystems, overlay mounts, private dockerds, local images.

Fixtures wrapping these live in tests/integration/conftest.py; docs/testing.md describes
them and what this machine can and cannot provide.
"""

import os

from .commands import CommandError, run
from .dockerd import DockerdFactory, EngineAPIError, PrivateDockerd, engine_api
from .images import BOOKWORM_PYTHON, BUSYBOX, LocalImage, import_image
from .loopfs import LoopFilesystem, LoopfsError, LoopfsFactory, create_loopfs
from .mounts import MountEntry, mount_at, mounts_at_or_below, read_mountinfo, unmount_tree
from .overlay import OverlayError, OverlayFactory, OverlayMount, create_overlay

# The directory whose sitecustomize.py kills a data_root run at a named step (test-only).
FAULT_INJECTION_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fault_injection")


def fault_environment(step):
    """The environment that makes the data_root module kill itself at ``step``."""
    return {"PYTHONPATH": FAULT_INJECTION_PATH, "DOCKERHOST_STORAGE_FAULT_AT": step}


__all__ = [
    "FAULT_INJECTION_PATH",
    "fault_environment",
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
