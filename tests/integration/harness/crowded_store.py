"""A data-root filled the way small-file hosts fill: images of many small files (tagged and
dangling), stopped containers that wrote files, BuildKit cache, an orphaned layer directory,
a running container, a kept stopped container and a named volume; then a last stopped
container writes files until the filesystem's inodes are used to a given share.

``fill(daemon, image)`` builds it on a running private dockerd whose data-root is alone on a
small filesystem (``make_loopfs("ext4", mkfs_args=("-N", "6000"))``), and returns what it
made, by role.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import tarfile
import tempfile
import time

from . import buildx
from .commands import run

KEEP_LABEL = "org.dockerhost-storage.keep"


def small_files_tarball(count: int, tag: str) -> bytes:
    """A rootfs tarball of ``count`` small files under ``/data``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directory = tarfile.TarInfo("data")
        directory.type = tarfile.DIRTYPE
        directory.mode = 0o755
        archive.addfile(directory)
        for index in range(count):
            payload = ("%s %d\n" % (tag, index)).encode()
            info = tarfile.TarInfo("data/%05d" % index)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def import_small_files(daemon, count: int, tag: str, reference: str | None) -> str:
    """Import an image of ``count`` small files (dangling when ``reference`` is None)."""
    with tempfile.NamedTemporaryFile(suffix=".tar") as handle:
        handle.write(small_files_tarball(count, tag))
        handle.flush()
        args = ["import", handle.name] + ([reference] if reference else [])
        return daemon.docker(*args, timeout=300).stdout.strip()


def stopped_container(daemon, image: str, name: str, files: int) -> str:
    """A container that wrote ``files`` empty files and exited."""
    script = "mkdir /w && cd /w && i=0; while [ $i -lt %d ]; do : > f$i; i=$((i+1)); done" % files
    daemon.docker("run", "--name", name, image, "sh", "-c", script, timeout=600)
    return daemon.docker("inspect", "-f", "{{.Id}}", name).stdout.strip()


def build_cache(daemon, files: int, workdir: str) -> str:
    """A BuildKit build from scratch copying ``files`` files; leaves build cache behind."""
    context = os.path.join(workdir, "context")
    os.makedirs(os.path.join(context, "files"))
    for index in range(files):
        with open(os.path.join(context, "files", str(index)), "w") as handle:
            handle.write(str(index))
    with open(os.path.join(context, "Dockerfile"), "w") as handle:
        handle.write("FROM scratch\nCOPY files /files\n")
    image = buildx.build(daemon, context)
    shutil.rmtree(context)
    return image


def orphan_layer(daemon, image: str) -> str:
    """Copy the top layer directory of ``image`` under a new layer id nothing names."""
    upper = daemon.api("GET", "/images/%s/json" % image)["GraphDriver"]["Data"]["UpperDir"]
    layer_id = secrets.token_hex(32)
    target = os.path.join(os.path.dirname(os.path.dirname(upper)), layer_id)
    run(["cp", "-a", os.path.dirname(upper), target])
    with open(os.path.join(target, "link"), "w") as handle:
        handle.write(secrets.token_hex(13).upper()[:26])
    return layer_id


def inodes(path: str) -> tuple[int, int]:
    st = os.statvfs(path)
    return st.f_files, st.f_ffree


def fill(daemon, busybox: str, used_percent: float = 97.0, workdir: str | None = None) -> dict:
    """Build the crowded store; returns ``{"keep": {...}, "removable": {...}}`` of ids."""
    workdir = workdir or tempfile.mkdtemp(prefix="crowded-")
    made = {"keep": {}, "removable": {}}
    made["keep"]["image"] = daemon.docker("inspect", "-f", "{{.Id}}", busybox).stdout.strip()
    made["removable"]["build_image"] = build_cache(daemon, 120, workdir)
    made["removable"]["dangling"] = [
        import_small_files(daemon, 250, "dangling-%d" % n, None) for n in range(2)
    ]
    made["removable"]["unused"] = [
        import_small_files(daemon, 250, "unused-%d" % n, "fill:%d" % n) for n in range(2)
    ]
    made["keep"]["kept_image"] = import_small_files(daemon, 100, "kept", "kept:1")
    made["keep"]["kept_container"] = _keeper(daemon)
    made["removable"]["stopped"] = [
        stopped_container(daemon, busybox, "stopped-%d" % n, 300) for n in range(3)
    ]
    made["removable"]["orphan"] = orphan_layer(daemon, made["removable"]["unused"][0])
    daemon.docker("volume", "create", "data")
    made["keep"]["volume"] = "data"
    daemon.docker("run", "-d", "--name", "web", "-v", "data:/data", busybox, "sleep", "3600")
    made["keep"]["running"] = daemon.docker("inspect", "-f", "{{.Id}}", "web").stdout.strip()
    total, free = inodes(daemon.data_root)
    wanted_free = int(total * (100 - used_percent) / 100)
    # each file of the filler is one inode; its layers and container directory take ~20 more
    filler = max(0, free - wanted_free - 20)
    made["removable"]["filler"] = stopped_container(daemon, busybox, "filler", filler)
    time.sleep(1.1)
    return made


def _keeper(daemon) -> str:
    """A container of kept:1 that never ran, carrying the keep label: the policy keeps it, and
    so its image."""
    daemon.docker("create", "--name", "keeper", "--label", KEEP_LABEL + "=yes", "kept:1", "true")
    return daemon.docker("inspect", "-f", "{{.Id}}", "keeper").stdout.strip()
