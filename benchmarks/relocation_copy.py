"""Relocation copy: the collection's copier and manifest check against rsync, side by side.

    sudo .venv/bin/python benchmarks/relocation_copy.py [--files 100000] [--gib 1.0]

Generates an overlay2-shaped store on a loop-backed ext4 (layers of many small files, hard
links, whiteouts, opaque directories, xattrs, sparse files, a few large files: at least
``--gib`` GiB and ``--files`` files), then on a loop-backed xfs target:

- manual: ``rsync -aHAXS --numeric-ids`` of the whole store (what an operator does with the
  engine stopped: this is the manual procedure's copy downtime);
- ours: a bulk ``TreeCopy.run()``, then 1% of the files changed, then the final
  ``TreeCopy.run()`` (the copy downtime of the module) and ``compare_trees`` with the changed
  files hashed (verification);
- rsync alone for the total: bulk rsync is the reference for "total wall time".

Caches are dropped before every timed copy (echo 3 > /proc/sys/vm/drop_caches), so both read
the store from disk. Results are printed and written to benchmarks/results/relocation_copy.json.
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

sys.path.insert(0, collections_root())
from ansible_collections.dockerhost.storage.plugins.module_utils._tree_copy import (  # noqa: E402
    TreeCopy,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._tree_manifest import (  # noqa: E402
    compare_trees,
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
            for _ in range(size // (1 << 20)):
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
        path = os.path.join(root, relative)
        with open(path, "ab") as handle:
            handle.write(b"changed")
    return set(chosen)


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as handle:
        handle.write("3\n")


def timed(function):
    drop_caches()
    started = time.monotonic()
    result = function()
    return time.monotonic() - started, result


def rsync(source, target):
    subprocess.run(
        ["rsync", "-aHAXS", "--numeric-ids", source.rstrip("/") + "/", target], check=True
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100000)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--workdir", default="/var/tmp/dockerhost-bench")
    args = parser.parse_args()

    os.makedirs(args.workdir, exist_ok=True)
    size_mb = int(args.gib * 1024 * 3) + 2048
    with create_loopfs(args.workdir, "ext4", size_mb=size_mb, inodes=args.files * 3) as source_fs:
        with create_loopfs(args.workdir, "xfs", size_mb=size_mb * 2) as target_fs:
            source = os.path.join(source_fs.mount_point, "docker")
            started = time.monotonic()
            regular = generate_store(source, args.files, int(args.gib * (1 << 30)))
            generated = time.monotonic() - started
            entries = sum(len(d) + len(f) for _r, d, f in os.walk(source))

            manual_target = os.path.join(target_fs.mount_point, "rsync")
            rsync_seconds, _ = timed(lambda: rsync(source, manual_target))

            copy = TreeCopy(source, os.path.join(target_fs.mount_point, "ours"))
            bulk_seconds, _ = timed(copy.run)
            changed = change_one_percent(source, regular)
            final_seconds, final_stats = timed(copy.run)
            verify_seconds, (differences, examples) = timed(
                lambda: compare_trees(source, copy.target, hash_paths=changed)
            )
            if differences:
                raise SystemExit("copy differs from the source: %s" % examples)

            ours_total = bulk_seconds + final_seconds + verify_seconds
            result = {
                "files_regular": len(regular),
                "entries": entries,
                "generated_seconds": round(generated, 1),
                "rsync_full_seconds": round(rsync_seconds, 2),
                "ours_bulk_seconds": round(bulk_seconds, 2),
                "ours_final_pass_seconds": round(final_seconds, 2),
                "ours_verify_seconds": round(verify_seconds, 2),
                "final_pass_copied": final_stats["copied"],
                "downtime_copy_ratio": round(final_seconds / rsync_seconds, 3),
                "total_ratio": round(ours_total / rsync_seconds, 3),
            }
    print(json.dumps(result, indent=2))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "relocation_copy.json"), "w") as handle:
        json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
