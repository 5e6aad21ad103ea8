"""BuildKit builds for tests: the docker CLI of bookworm (20.10) needs the buildx plugin to
build with BuildKit, which is what makes build cache, and bookworm has no docker-buildx
package. trixie's is fetched once from the Debian archive (whatever revision trixie has now)
into the test cache, with an apt state of its own, and used through a DOCKER_CONFIG directory
that holds only the plugin.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import subprocess
import tempfile

from .commands import c_locale_env, run
from .images import cache_dir

SUITE = "trixie"
MIRROR = "http://deb.debian.org/debian"


def _plugin_dir() -> str:
    return os.path.join(cache_dir(), "buildx", "config")


def _fetch(directory: str) -> None:
    """Download docker-buildx of ``SUITE`` and unpack its plugin into ``directory``."""
    work = tempfile.mkdtemp(prefix="buildx-apt-")
    try:
        for sub in ("lists/partial", "archives/partial", "etc"):
            os.makedirs(os.path.join(work, sub))
        sources = os.path.join(work, "etc", "sources.list")
        with open(sources, "w", encoding="utf-8") as handle:
            handle.write("deb %s %s main\n" % (MIRROR, SUITE))
        options = [
            "-o", "Dir::Etc::SourceList=" + sources,
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", "Dir::State::Lists=" + os.path.join(work, "lists"),
            "-o", "Dir::Cache=" + work,
            "-o", "Debug::NoLocking=1",
            "-o", "APT::Sandbox::User=root",
        ]  # fmt: skip
        run(["apt-get", *options, "-q", "update"], timeout=300)
        subprocess.run(
            ["apt-get", *options, "-q", "download", "docker-buildx"],
            cwd=work, env=c_locale_env(), check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        (deb,) = glob.glob(os.path.join(work, "docker-buildx_*.deb"))
        unpacked = os.path.join(work, "unpacked")
        run(["dpkg-deb", "-x", deb, unpacked])
        plugins = os.path.join(directory, "cli-plugins")
        os.makedirs(plugins)
        shutil.copy2(
            os.path.join(unpacked, "usr/libexec/docker/cli-plugins/docker-buildx"), plugins
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def buildx_config() -> str:
    """A DOCKER_CONFIG directory whose ``cli-plugins`` holds docker-buildx, fetched on first
    use (a lock keeps parallel test runs from fetching it twice)."""
    directory = _plugin_dir()
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    with open(directory + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isfile(os.path.join(directory, "cli-plugins", "docker-buildx")):
            staging = tempfile.mkdtemp(prefix="config-", dir=os.path.dirname(directory))
            try:
                _fetch(staging)
                shutil.rmtree(directory, ignore_errors=True)
                os.rename(staging, directory)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return directory


def build(daemon, context: str, tag: str | None = None) -> str:
    """``docker build`` with BuildKit against ``daemon``; the image id."""
    env = c_locale_env({"DOCKER_BUILDKIT": "1", "DOCKER_CONFIG": buildx_config()})
    argv = [daemon_cli(), "--host=unix://" + daemon.socket, "build", "-q"]
    argv += ["-t", tag] if tag else []
    completed = subprocess.run(
        argv + [context], env=env, check=True, capture_output=True, text=True, timeout=300
    )
    return completed.stdout.strip()


def daemon_cli() -> str:
    from .dockerd import DOCKER_CLI

    return DOCKER_CLI if os.access(DOCKER_CLI, os.X_OK) else shutil.which("docker") or "docker"
