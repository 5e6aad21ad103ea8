"""Relocation of a data-root: the data_root transaction against the manual procedure, side by side.

    sudo .venv/bin/python benchmarks/relocation.py [--files 100000] [--gib 1.0]

Generates an overlay2-shaped store in the data-root of a private dockerd on a loop-backed ext4
(layers of many small files, hard links, whiteouts, opaque directories, security and trusted
xattrs, sparse files and large files: at least ``--gib`` GiB of data and ``--files`` files),
the dockerd managed through an init script, and a loop-backed xfs as the new home. Then:

- manual: stop the engine, ``rsync -aHAXS --numeric-ids`` the data-root to xfs, switch
  data-root in daemon.json, start, wait until the engine answers: its downtime is the reference
  for the module's downtime. (The engine is then put back on the source.)
- rsync alone: ``rsync -aHAXS --numeric-ids`` of the data-root to a fresh directory: the reference
  for the module's total wall time.
- data_root: the module's transaction (the same Relocation, copier, manifest check, daemon.json
  switch and init-script control the module uses), with 1% of the files changed between the
  bulk copy and the stop. Downtime is from the stop until the engine answers on the new root;
  total wall time excludes the time spent making the 1% change.

Page caches are dropped before each copy, so every copy reads the store from disk. Results are
printed and written to benchmarks/results/relocation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))

from collection_path import collections_root  # noqa: E402
from harness.loopfs import create_loopfs  # noqa: E402
from harness.service import ServiceDockerd  # noqa: E402

sys.path.insert(0, collections_root())
from ansible_collections.dockerhost.storage.plugins.module_utils import (  # noqa: E402
    _engine_service,
    _relocation,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._tree_copy import (  # noqa: E402
    TreeCopy,
)

LAYER_FILES = 2000


def generate_store(root, files, total_bytes, seed=7):
    """An overlay2-shaped store; returns the list of regular files (relative paths)."""
    rng = random.Random(seed)
    store = os.path.join(root, "overlay2")
    os.makedirs(os.path.join(store, "l"))
    regular = []
    layers = max(1, files // LAYER_FILES)
    small_bytes = 0
    for layer in range(layers):
        layer_id = "%064x" % rng.getrandbits(256)
        diff = os.path.join(store, layer_id, "diff")
        for index in range(LAYER_FILES):
            directory = os.path.join(diff, "usr", "lib", "d%02d" % (index % 40))
            os.makedirs(directory, exist_ok=True)
            path = os.path.join(directory, "f%05d" % index)
            size = rng.choice((0, 100, 700, 1500, 3000, 9000))
            with open(path, "wb") as handle:
                handle.write(os.urandom(size))
            small_bytes += size
            regular.append(os.path.relpath(path, root))
            if index % 97 == 0:
                os.setxattr(path, "security.capability", b"\x01\x00\x00\x02" + b"\0" * 16)
            if index % 50 == 1:
                os.link(path, path + ".hardlink")
        os.mknod(os.path.join(diff, "usr", "lib", "d00", "whiteout"), 0o20000 | 0o600, 0)
        os.setxattr(os.path.join(diff, "usr", "lib", "d01"), "trusted.overlay.opaque", b"y")
        link = "L%025d" % layer
        os.symlink("../%s/diff" % layer_id, os.path.join(store, "l", link))
        with open(os.path.join(store, layer_id, "link"), "w") as handle:
            handle.write(link)
        os.makedirs(os.path.join(store, layer_id, "work"))
    big = os.path.join(store, "big", "diff")
    os.makedirs(big)
    remaining = max(0, total_bytes - small_bytes)
    count = 0
    while remaining > 0:
        size = min(remaining, 64 << 20)
        path = os.path.join(big, "blob%03d" % count)
        with open(path, "wb") as handle:
            for _block in range(size // (1 << 20)):
                handle.write(os.urandom(1 << 20))
        regular.append(os.path.relpath(path, root))
        remaining -= size
        count += 1
    for index in range(4):
        path = os.path.join(big, "sparse%d.img" % index)
        with open(path, "wb") as handle:
            handle.truncate(1 << 30)
            handle.seek(512 << 20)
            handle.write(os.urandom(1 << 20))
    return regular


def change_one_percent(root, regular, seed=11):
    rng = random.Random(seed)
    chosen = rng.sample(regular, max(1, len(regular) // 100))
    for relative in chosen:
        with open(os.path.join(root, relative), "ab") as handle:
            handle.write(b"changed")
    return len(chosen)


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as handle:
        handle.write("3\n")


def rsync(source, target):
    argv = ["rsync", "-aHAXS", "--numeric-ids", source.rstrip("/") + "/", target]
    subprocess.run(argv, check=True, env=dict(os.environ, LANG="C", LC_ALL="C"))


def set_data_root(daemon, data_root):
    settings = daemon.settings()
    settings["data-root"] = data_root
    with open(daemon.config_file, "w", encoding="utf-8") as handle:
        json.dump(settings, handle, indent=2)


def manual_procedure(daemon, source, target):
    """Stop, rsync, switch, start; returns the downtime in seconds."""
    drop_caches()
    started = time.monotonic()
    daemon.service("stop")
    rsync(source, target)
    set_data_root(daemon, target)
    daemon.service("start")
    daemon.wait_until_up(120)
    downtime = time.monotonic() - started
    assert daemon.info()["DockerRootDir"] == target
    daemon.service("stop")
    set_data_root(daemon, source)
    daemon.start()
    return downtime


def module_transaction(daemon, source, target, regular):
    """The data_root transaction; returns (downtime, total without the change, changed files)."""
    service = _engine_service.EngineService("sysvinit", daemon.init_script, 120)
    change = {}

    def checkpoint(name):
        if name == "after-bulk-copy":
            started = time.monotonic()
            change["files"] = change_one_percent(source, regular)
            os.sync()
            change["seconds"] = time.monotonic() - started

    copy = TreeCopy(source, target)
    collaborators = _relocation.live_collaborators(
        copy, service, daemon.config_file, daemon.docker_host, 120, checkpoint=checkpoint
    )
    relocation = _relocation.Relocation(source, target, "overlay2", collaborators)
    drop_caches()
    started = time.monotonic()
    relocation.run()
    total = time.monotonic() - started - change["seconds"]
    assert daemon.info()["DockerRootDir"] == target
    return relocation.timings, total, change["files"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--files", type=int, default=100000)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--workdir", default="/var/tmp/dockerhost-bench")
    args = parser.parse_args()

    os.makedirs(args.workdir, exist_ok=True)
    size_mb = int(args.gib * 1024 * 3) + 2048
    with create_loopfs(args.workdir, "ext4", size_mb=size_mb, inodes=args.files * 3) as source_fs:
        with create_loopfs(args.workdir, "xfs", size_mb=size_mb * 3) as target_fs:
            source = os.path.join(source_fs.mount_point, "docker")
            started = time.monotonic()
            regular = generate_store(source, args.files, int(args.gib * (1 << 30)))
            generated = time.monotonic() - started
            entries = sum(len(d) + len(f) for _r, d, f in os.walk(source))
            data_bytes = int(subprocess.check_output(["du", "-s", "-B1", source]).split()[0])
            daemon = ServiceDockerd(source, {"storage-driver": "overlay2"})
            targets = [os.path.join(target_fs.mount_point, n) for n in ("manual", "alone", "ours")]
            try:
                daemon.start()
                manual_downtime = manual_procedure(daemon, source, targets[0])
                drop_caches()
                started = time.monotonic()
                rsync(source, targets[1])
                rsync_alone = time.monotonic() - started
                timings, ours_total, changed = module_transaction(
                    daemon, source, targets[2], regular
                )
            finally:
                daemon.destroy(extra_roots=tuple(targets))
            result = {
                "files_regular": len(regular),
                "entries": entries,
                "data_bytes": data_bytes,
                "changed_files": changed,
                "generated_seconds": round(generated, 1),
                "manual_downtime_seconds": round(manual_downtime, 2),
                "rsync_alone_seconds": round(rsync_alone, 2),
                "module_timings": timings,
                "module_total_seconds": round(ours_total, 2),
                "downtime_ratio": round(timings["downtime"] / manual_downtime, 3),
                "total_ratio": round(ours_total / rsync_alone, 3),
            }
    print(json.dumps(result, indent=2))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "relocation.json"), "w") as handle:
        json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
