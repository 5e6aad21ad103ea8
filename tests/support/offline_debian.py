"""Debian bookworm images that install packages without a network: a local base for builds.

No registry is reachable, and pip in a container cannot verify PyPI's certificate here (the
host can), so an image build that needs Debian packages or Python wheels gets them from an
image made here, ``dockerhost-test/bookworm-offline``: the bookworm-python test image plus

- ``/opt/offline/debs``: the .deb files asked for and every dependency the image lacks, as a
  flat apt repository (a ``Packages`` index), which ``/etc/apt/sources.list`` names instead of
  the Debian mirror: ``apt-get update && apt-get install <package>`` works as against a mirror;
- ``/opt/offline/wheels``: the wheels asked for and their dependencies, which ``/etc/pip.conf``
  makes pip's only index (``no-index``, ``find-links``).

It is what a site without Internet access gives its builds: a base image whose package sources
are a mirror of its own. The debs are downloaded by a container of the bookworm-python image
(``apt-get install --download-only``, so the dependencies are exactly those the image lacks),
the wheels by pip on this host; both are cached under the test image cache
(``<cache>/offline-bookworm/<key>``, the key being the packages, the requirements and the
rootfs the image comes from), so a warm run uses no network. Images are built in the host
dockerd with ``--network none``; its layer cache makes a rebuild from the same cache entry
instant. ``sshd_image`` adds Debian's openssh-server on top: a host to reach over SSH.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKER = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else "docker"
SOURCE_IMAGE = "dockerhost-test/bookworm-python:latest"
SOURCE_TARBALL = "bookworm-python-rootfs.tar"
OFFLINE_IMAGE = "dockerhost-test/bookworm-offline:latest"
SSHD_IMAGE = "dockerhost-test/bookworm-sshd:latest"
ROOTFS_SHA256_LABEL = "org.dockerhost-storage.rootfs-sha256"
# Bump when the layout of a cache entry or the Dockerfiles below change.
RECIPE = "offline-bookworm/v1"
# The packages sshd_image installs; part of every repository made here.
SSHD_PACKAGES = ("openssh-server",)

OFFLINE_DOCKERFILE = """\
FROM %(source)s
COPY debs/ /opt/offline/debs/
COPY wheels/ /opt/offline/wheels/
COPY sources.list /etc/apt/sources.list
COPY pip.conf /etc/pip.conf
LABEL org.dockerhost-storage.offline-key=%(key)s
"""
SOURCES_LIST = "deb [trusted=yes] file:/opt/offline/debs ./\n"
PIP_CONF = "[global]\nno-index = true\nfind-links = /opt/offline/wheels\n"

SSHD_DOCKERFILE = """\
FROM %(offline)s
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends %(packages)s \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /run/sshd /root/.ssh && chmod 0700 /root/.ssh \\
 && printf '%%s\\n' 'PermitRootLogin prohibit-password' 'PasswordAuthentication no' \\
    'KbdInteractiveAuthentication no' 'UsePAM no' >/etc/ssh/sshd_config.d/test.conf
CMD ["/usr/sbin/sshd", "-D", "-e"]
"""


class OfflineImageError(RuntimeError):
    """A step of making an offline image failed; the message says which and how."""


def run(argv, timeout=600, **kwargs):
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if completed.returncode != 0:
        raise OfflineImageError(
            "%s failed (exit %d):\n%s\n%s"
            % (
                " ".join(argv[:4]),
                completed.returncode,
                completed.stdout[-3000:],
                completed.stderr[-3000:],
            )
        )
    return completed


def cache_root():
    base = os.environ.get("DOCKERHOST_TEST_IMAGE_CACHE", "/var/cache/dockerhost-storage-tests")
    return os.path.join(base, "offline-bookworm")


def _stamp_sha256(tarball):
    try:
        with open(tarball + ".stamp", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("sha256="):
                    return line.strip().partition("=")[2]
    except FileNotFoundError:
        pass
    return ""


def ensure_source_image():
    """The bookworm-python image in the host dockerd, as imported from its cached tarball;
    scripts/build-images makes and imports it when it is missing or stale. Returns the
    tarball's sha256."""
    base = os.path.dirname(cache_root())
    sha = _stamp_sha256(os.path.join(base, SOURCE_TARBALL))
    current = subprocess.run(
        [
            DOCKER,
            "image",
            "inspect",
            "--format",
            '{{index .Config.Labels "%s"}}' % ROOTFS_SHA256_LABEL,
            SOURCE_IMAGE,
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not sha or current != sha:
        run(["bash", os.path.join(REPO_ROOT, "scripts", "build-images")], timeout=1800)
        sha = _stamp_sha256(os.path.join(base, SOURCE_TARBALL))
    return sha


def cache_key(debs, wheels, source_sha256):
    text = json.dumps([RECIPE, sorted(set(debs)), sorted(set(wheels)), source_sha256])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def download_debs(packages, dest):
    """The .deb files of ``packages`` and of every dependency the source image lacks, by a
    throw-away container of it (it reaches the Debian mirror over http)."""
    os.makedirs(dest)
    run(
        [
            DOCKER,
            "run",
            "--rm",
            "-v",
            "%s:/var/cache/apt/archives" % dest,
            SOURCE_IMAGE,
            "sh",
            "-c",
            'apt-get update -qq && apt-get install -y -qq --download-only --no-install-recommends "$@"'
            " >/dev/null",
            "sh",
            *sorted(set(packages)),
        ],
        timeout=900,
    )
    for name in ("lock", "partial"):
        path = os.path.join(dest, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    write_packages_index(dest)


def write_packages_index(directory):
    """A flat repository's ``Packages`` for the .deb files in ``directory``, as
    dpkg-scanpackages writes it (control fields, then Filename, Size and checksums)."""
    stanzas = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".deb"):
            continue
        path = os.path.join(directory, name)
        control = run(["dpkg-deb", "-f", path]).stdout.rstrip("\n")
        with open(path, "rb") as handle:
            data = handle.read()
        stanzas.append(
            "%s\nFilename: ./%s\nSize: %d\nMD5sum: %s\nSHA256: %s\n"
            % (
                control,
                name,
                len(data),
                hashlib.md5(data).hexdigest(),
                hashlib.sha256(data).hexdigest(),
            )
        )
    if not stanzas:
        raise OfflineImageError("no .deb files were downloaded into %s" % directory)
    with open(os.path.join(directory, "Packages"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(stanzas))


def download_wheels(requirements, dest):
    """Wheels only (nothing to compile in the image) for ``requirements`` and their
    dependencies, by this host's pip for its Python, which is the image's (3.11, glibc)."""
    os.makedirs(dest)
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--dest",
            dest,
            *sorted(set(requirements)),
        ],
        timeout=900,
    )


def _prepare_entry(entry, key, debs, wheels):
    staging = tempfile.mkdtemp(prefix="staging.", dir=os.path.dirname(entry))
    try:
        download_debs(debs, os.path.join(staging, "debs"))
        download_wheels(wheels, os.path.join(staging, "wheels"))
        files = {
            "Dockerfile": OFFLINE_DOCKERFILE % {"source": SOURCE_IMAGE, "key": key},
            "sources.list": SOURCES_LIST,
            "pip.conf": PIP_CONF,
        }
        for name, text in files.items():
            with open(os.path.join(staging, name), "w", encoding="utf-8") as handle:
                handle.write(text)
        # The image's apt reads the repository as its unprivileged _apt user.
        for root, dirs, names in os.walk(staging):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
            for name in names:
                os.chmod(os.path.join(root, name), 0o644)
        os.chmod(staging, 0o755)
        os.rename(staging, entry)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def offline_image(debs=(), wheels=()):
    """Build (or find in the layer cache) OFFLINE_IMAGE holding ``debs`` (Debian package names)
    and ``wheels`` (pip requirement strings) with their dependencies; return its name.

    The repository always holds SSHD_PACKAGES too, so sshd_image builds on the same image.
    """
    debs = sorted(set(debs) | set(SSHD_PACKAGES))
    source_sha256 = ensure_source_image()
    key = cache_key(debs, wheels, source_sha256)
    root = cache_root()
    os.makedirs(root, exist_ok=True)
    entry = os.path.join(root, key)
    with open(os.path.join(root, ".lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isdir(entry):
            _prepare_entry(entry, key, debs, wheels)
            # Entries of other keys are stale: another package set or source image.
            for name in os.listdir(root):
                if name not in (key, ".lock"):
                    shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        run([DOCKER, "build", "--network", "none", "-q", "-t", OFFLINE_IMAGE, entry])
    return OFFLINE_IMAGE


def sshd_image(work):
    """SSHD_IMAGE: OFFLINE_IMAGE with Debian's openssh-server installed from its repository,
    running ``sshd -D -e``; root logs in with a key bound to /root/.ssh/authorized_keys."""
    context = os.path.join(work, "sshd-context")
    os.makedirs(context)
    with open(os.path.join(context, "Dockerfile"), "w", encoding="utf-8") as handle:
        handle.write(
            SSHD_DOCKERFILE % {"offline": OFFLINE_IMAGE, "packages": " ".join(SSHD_PACKAGES)}
        )
    run([DOCKER, "build", "--network", "none", "-q", "-t", SSHD_IMAGE, context])
    return SSHD_IMAGE


def client_key(directory, owner=None):
    """A new ed25519 key pair ``directory/id_ed25519{,.pub}``; ``owner`` (uid, gid) owns both,
    for a client that runs as another user. Returns the private key's path."""
    path = os.path.join(directory, "id_ed25519")
    run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dockerhost-storage-test", "-f", path]
    )
    if owner is not None:
        for name in (path, path + ".pub"):
            os.chown(name, *owner)
    return path
