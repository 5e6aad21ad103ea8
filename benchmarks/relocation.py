"""Relocation of a data-root: the data_root transaction against the manual procedure, side by side.

    sudo .venv/bin/python benchmarks/relocation.py [--files 100000] [--gib 1.0] [--rounds 5]
        [--load 3]

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

Each round runs the three in turn, alternating the order every other round; the ratios are of
the medians. Page caches are dropped before each copy, so every copy reads the store from disk.
``--load N`` keeps N processes busy on the CPUs meanwhile (``loaded``; without it, ``quiet``).
Results are printed and recorded as benchmarks/results/relocation-<condition>-<time>.json (see
benchmarks/_bench.py); ``benchmarks/regression.py relocation`` compares the last two.

The module's downtime is held to two marks: a fraction of the manual procedure's, and the
engine's own stop and start (measured in the same transaction) plus 1 s per 100k entries.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

import _bench

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
            for _megabyte in range(size // (1 << 20)):
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


def remove_tree(path):
    subprocess.run(["rm", "-rf", "--one-file-system", "--", path], check=True)


def set_data_root(daemon, data_root):
    settings = daemon.settings()
    settings["data-root"] = data_root
    with open(daemon.config_file, "w", encoding="utf-8") as handle:
        json.dump(settings, handle, indent=2)


def back_on_source(daemon, source):
    daemon.service("stop")
    set_data_root(daemon, source)
    daemon.start()
    assert daemon.info()["DockerRootDir"] == source


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
    back_on_source(daemon, source)
    remove_tree(target)
    return downtime


def rsync_alone(source, target):
    drop_caches()
    started = time.monotonic()
    rsync(source, target)
    seconds = time.monotonic() - started
    remove_tree(target)
    return seconds


def module_transaction(daemon, source, target, regular, round_index):
    """The data_root transaction, with 1% of the files changed between the bulk copy and the
    stop; returns its figures (total wall time without the time spent changing files)."""
    service = _engine_service.EngineService("sysvinit", daemon.init_script, 120)
    change = {}

    def checkpoint(name):
        if name == "after-bulk-copy":
            started = time.monotonic()
            change["files"] = change_one_percent(source, regular, seed=11 + round_index)
            change["seconds"] = time.monotonic() - started

    copy = TreeCopy(source, target)
    collaborators = _relocation.live_collaborators(
        copy, service, daemon.config_file, daemon.docker_host, 120, checkpoint=checkpoint
    )
    relocation = _relocation.Relocation(source, target, "overlay2", collaborators)
    drop_caches()
    started = time.monotonic()
    done = relocation.run()
    total = time.monotonic() - started - change["seconds"]
    assert daemon.info()["DockerRootDir"] == target
    final = next(step for step in relocation.steps if step.startswith("final pass"))
    os.rename(done["source_kept_at"], source)
    back_on_source(daemon, source)
    remove_tree(target)
    timings = relocation.timings
    return {
        "seconds": total,
        "downtime": timings["downtime"],
        "engine_stop_start": timings["stop_engine"] + timings["start_engine"],
        "timings": timings,
        "final_pass": final,
        "changed_files": change["files"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--files", type=int, default=100000)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--workdir", default="/var/tmp/dockerhost-bench")
    _bench.add_common_arguments(parser)
    args = parser.parse_args()

    os.makedirs(args.workdir, exist_ok=True)
    size_mb = int(args.gib * 1024 * 3) + 2048
    machine = {"before": _bench.machine_state()}
    with create_loopfs(args.workdir, "ext4", size_mb=size_mb, inodes=args.files * 3) as source_fs:
        with create_loopfs(args.workdir, "xfs", size_mb=size_mb * 2) as target_fs:
            source = os.path.join(source_fs.mount_point, "docker")
            started = time.monotonic()
            regular = generate_store(source, args.files, int(args.gib * (1 << 30)))
            generated = time.monotonic() - started
            entries = sum(len(d) + len(f) for _r, d, f in os.walk(source))
            data_bytes = int(subprocess.check_output(["du", "-s", "-B1", source]).split()[0])
            daemon = ServiceDockerd(source, {"storage-driver": "overlay2"})
            target = os.path.join(target_fs.mount_point, "copy")
            rounds = {"index": 0}

            def ours():
                figures = module_transaction(daemon, source, target, regular, rounds["index"])
                rounds["index"] += 1
                return figures

            try:
                daemon.start()
                with _bench.cpu_load(args.load):
                    machine["loaded"] = _bench.machine_state()
                    runs = _bench.alternate(
                        args.rounds,
                        {
                            "manual": lambda: manual_procedure(daemon, source, target),
                            "rsync": lambda: rsync_alone(source, target),
                            "module": ours,
                        },
                    )
                    machine["after"] = _bench.machine_state()
            finally:
                daemon.destroy(extra_roots=(target,))
    manual = statistics.median(runs["manual"])
    rsync_seconds = statistics.median(runs["rsync"])
    module_total = _bench.median_seconds(runs["module"])
    downtime = statistics.median(run["downtime"] for run in runs["module"])
    restart = statistics.median(run["engine_stop_start"] for run in runs["module"])
    beyond_restart = statistics.median(
        run["downtime"] - run["engine_stop_start"] for run in runs["module"]
    )
    ratios = {
        "total_vs_rsync": module_total / rsync_seconds,
        "downtime_vs_manual": downtime / manual,
        # Downtime beyond the engine's own stop and start, in seconds per 100k entries.
        "downtime_beyond_restart_per_100k": beyond_restart / (entries / 1e5),
    }
    targets = {
        condition: {
            "total_vs_rsync": 1.2,
            "downtime_vs_manual": 0.12,
            "downtime_beyond_restart_per_100k": 1.0,
        }
        for condition in ("quiet", "loaded")
    }
    result = {
        "machine": machine,
        "rounds": args.rounds,
        "files_regular": len(regular),
        "entries": entries,
        "data_bytes": data_bytes,
        "generated_seconds": round(generated, 1),
        "median_seconds": {
            "manual_downtime": round(manual, 2),
            "rsync_alone": round(rsync_seconds, 2),
            "module_total": round(module_total, 2),
            "module_downtime": round(downtime, 3),
            "module_engine_stop_start": round(restart, 3),
        },
        "manual_downtime_seconds": [round(value, 2) for value in runs["manual"]],
        "rsync_alone_seconds": [round(value, 2) for value in runs["rsync"]],
        "module_runs": [dict(run, seconds=round(run["seconds"], 2)) for run in runs["module"]],
    }
    path = _bench.record("relocation", args.load, result, ratios, targets)
    print(json.dumps({"ratios": ratios, "median_seconds": result["median_seconds"]}, indent=2))
    print("recorded", os.path.relpath(path, REPO))


if __name__ == "__main__":
    main()
