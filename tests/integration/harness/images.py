"""The locally built test images: rootfs tarballs cached by scripts/build-images.

The tarball paths are the interface: scripts/build-images writes them (with a stamp holding
the recipe and the tarball's sha256), and tests import them into their private dockerds with
``docker import``. Names and CMDs here match scripts/build-images.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .dockerd import PrivateDockerd

DEFAULT_CACHE_DIR = "/var/cache/dockerhost-storage-tests"
# Records which tarball an image was imported from (the same label on the host's images).
ROOTFS_SHA256_LABEL = "org.dockerhost-storage.rootfs-sha256"


def cache_dir() -> str:
    return os.environ.get("DOCKERHOST_TEST_IMAGE_CACHE", DEFAULT_CACHE_DIR)


def stamp_sha256(tarball: str) -> str | None:
    """The sha256 a cached tarball's ``.stamp`` records (the build scripts write it), or None."""
    try:
        with open(tarball + ".stamp", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("sha256="):
                    return line.strip().partition("=")[2] or None
    except FileNotFoundError:
        pass
    return None


@dataclass(frozen=True)
class LocalImage:
    """A test image: its name and the cached rootfs tarball it is imported from."""

    name: str
    tarball_name: str
    cmd: tuple[str, ...]

    @property
    def tarball(self) -> str:
        return os.path.join(cache_dir(), self.tarball_name)

    @property
    def stamp(self) -> str:
        return self.tarball + ".stamp"

    def is_cached(self) -> bool:
        return os.path.isfile(self.tarball) and os.path.isfile(self.stamp)

    def rootfs_sha256(self) -> str | None:
        return stamp_sha256(self.tarball)

    def missing_message(self) -> str:
        return "test image %s is not built: %s is missing; run scripts/setup-host (as root)" % (
            self.name,
            self.tarball,
        )


BUSYBOX = LocalImage("dockerhost-test/busybox:latest", "busybox-rootfs.tar", ("/bin/sh",))
BOOKWORM_PYTHON = LocalImage(
    "dockerhost-test/bookworm-python:latest", "bookworm-python-rootfs.tar", ("/bin/bash",)
)
IMAGES = (BUSYBOX, BOOKWORM_PYTHON)


def import_image(daemon: PrivateDockerd, image: LocalImage) -> str:
    """Import ``image``'s cached tarball into ``daemon`` as ``image.name``; return its id."""
    if not image.is_cached():
        raise FileNotFoundError(image.missing_message())
    changes = ["--change", "CMD " + json.dumps(list(image.cmd))]
    sha256 = image.rootfs_sha256()
    if sha256:
        changes += ["--change", "LABEL %s=%s" % (ROOTFS_SHA256_LABEL, sha256)]
    completed = daemon.docker("import", *changes, image.tarball, image.name, timeout=300)
    return completed.stdout.strip()
