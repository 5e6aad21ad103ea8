"""Engines of other Debian releases, run on this kernel from their root filesystem.

The host's own engine is bookworm's docker.io 20.10. Newer engines come from the root
filesystems scripts/build-molecule-image makes: forky's holds docker.io 28.5 with containerd
2.1 and runc. Such a tree is unpacked once into the image cache (keyed by the tarball's
sha256), and a dockerd from it runs chrooted there, in a mount namespace of its own that sees
the host's /proc, /sys and /dev and the directories the test names (the daemon's run directory,
its data-root's nearest existing directory), each at the same path as on the host. So the
daemon's socket, log and data-root are where a test on the host expects them, and the loop
filesystems the test made are the ones the engine stores on.

``chroot_exec.py`` is the launcher run inside ``unshare --mount``.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass

from .images import cache_dir, stamp_sha256

LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chroot_exec.py")


@dataclass(frozen=True)
class EngineRoot:
    """An unpacked root filesystem holding a dockerd: ``path``, and the Debian versions of
    docker.io and containerd it holds (``version``, ``containerd_version``)."""

    name: str
    path: str
    version: str
    containerd_version: str

    def dockerd_on_search_path(self, directory: str, binds: list[str]) -> list[str]:
        """A wrapper that runs a command with this root's dockerd where the collection looks
        for it (/usr/local/sbin/dockerd comes first on its search path).

        Writes ``directory``/dockerd, a script that runs this root's dockerd chrooted with
        ``binds`` visible, and returns an argv prefix that runs a command in a mount namespace
        where ``directory`` is mounted over /usr/local/sbin."""
        shim = os.path.join(directory, "dockerd")
        launch = self.command(["/usr/sbin/dockerd"], binds)
        with open(shim, "w", encoding="utf-8") as handle:
            handle.write(
                "#!/bin/sh\n# dockerd %s of %s, run chrooted (tests/integration/harness)\n"
                'exec %s "$@"\n' % (self.version, self.path, shlex.join(launch))
            )
        os.chmod(shim, 0o755)
        bind = [sys.executable, "-I", LAUNCHER, "--bind-over", directory, "/usr/local/sbin"]
        return ["unshare", "--mount", "--propagation", "private", "--", *bind, "--"]

    def command(self, argv: list[str], binds: list[str]) -> list[str]:
        """``argv`` (a program of this root) run chrooted here, in a mount namespace of its own
        where every path in ``binds`` is the host's directory of the same name."""
        launcher = [sys.executable, "-I", LAUNCHER, self.path]
        for path in binds:
            launcher += ["--bind", path]
        return ["unshare", "--mount", "--propagation", "private", "--", *launcher, "--", *argv]


@dataclass(frozen=True)
class EngineRootSource:
    """Where an engine root comes from: a rootfs tarball of scripts/build-molecule-image."""

    name: str
    tarball_name: str
    builder: str

    @property
    def tarball(self) -> str:
        return os.path.join(cache_dir(), self.tarball_name)

    def sha256(self) -> str | None:
        return stamp_sha256(self.tarball)

    def missing_message(self) -> str:
        return "the %s engine's root filesystem is not built: %s is missing; run %s" % (
            self.name,
            self.tarball,
            self.builder,
        )


FORKY = EngineRootSource(
    "forky", "forky-systemd-docker-rootfs.tar", "scripts/build-molecule-image --no-import forky"
)
TRIXIE = EngineRootSource(
    "trixie",
    "trixie-host-docker-rootfs.tar",
    "scripts/build-molecule-image --no-import trixie",
)


def _package_versions(root: str) -> dict[str, str]:
    completed = subprocess.run(
        [
            "chroot",
            root,
            "dpkg-query",
            "-W",
            "-f=${Package} ${Version}\\n",
            "docker.io",
            "containerd",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"LANG": "C", "LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    return dict(line.split(" ", 1) for line in completed.stdout.splitlines() if " " in line)


def unpack(source: EngineRootSource) -> EngineRoot:
    """The engine root of ``source``, unpacked into the cache unless it already is there.

    FileNotFoundError with ``missing_message()`` when the tarball is not built."""
    sha256 = source.sha256()
    if not sha256 or not os.path.isfile(source.tarball):
        raise FileNotFoundError(source.missing_message())
    parent = os.path.join(cache_dir(), "engine-roots")
    root = os.path.join(parent, "%s-%s" % (source.name, sha256[:16]))
    done = root + ".unpacked"
    os.makedirs(parent, exist_ok=True)
    with open(os.path.join(parent, ".lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(done):
            shutil.rmtree(root, ignore_errors=True)
            # Roots (and their markers) of older tarballs of this release.
            for stale in os.listdir(parent):
                path = os.path.join(parent, stale)
                if not stale.startswith(source.name + "-"):
                    continue
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            os.mkdir(root)
            subprocess.run(
                [
                    "tar",
                    "--extract",
                    "--file",
                    source.tarball,
                    "--directory",
                    root,
                    "--numeric-owner",
                    "--xattrs",
                    "--xattrs-include=*",
                ],
                check=True,
                env={"LANG": "C", "LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            )
            with open(done, "w", encoding="utf-8") as handle:
                handle.write(sha256 + "\n")
    versions = _package_versions(root)
    return EngineRoot(
        source.name, root, versions.get("docker.io", ""), versions.get("containerd", "")
    )


def nearest_existing(path: str) -> str:
    """``path`` or its nearest ancestor that exists."""
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path
