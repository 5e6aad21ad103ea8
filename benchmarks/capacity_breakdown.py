"""Benchmark: capacity_info's breakdown walk against ``du -x --inodes -s`` on the same tree.

    sudo flock /var/tmp/dockerhost-heavy.lock .venv/bin/python benchmarks/capacity_breakdown.py \
        [--files 100000 200000] [--rounds 5] [--load 3]

For each file count it builds an overlay2-shaped data-root (250 layers ``overlay2/<id>/diff``
full of small files and four hard links each, ``overlay2/l`` symlinks, ``image/`` layer
metadata, ``containers/``, ``volumes/``) on a fresh loop-mounted ext4 (as root; otherwise in a
temporary directory). All trees are built first and synced to disk (their writeback would
slow the first rounds); then, for each tree, one walk of each warms the cache and du and the
breakdown run alternately for ``--rounds`` rounds (``benchmarks/_bench.py``: the order flips
every round, so a change of load hits both).
``--load N`` keeps N busy processes running through the rounds (the ``loaded`` condition; on 2
cores ``--load 3`` gives a load average above 2), and the rounds start only once the one-minute
load average has climbed to the number of CPUs (or N, if smaller). It reports the median wall
times and their ratio, the ratio of the fastest runs and of the median CPU time both used, and
fails when the breakdown's inode or byte total differs from du's in any round.

Peak memory is measured in child processes that run only the breakdown, after the rounds: the
maximum resident set size (``wait4``; the largest of the child and its walker processes) of a
walk as capacity_info runs it, and the peak of Python allocations (``tracemalloc``) of a walk in
one process, where every allocation is seen. The layer count and the hard links stay the same at
every size (the walk keeps one small record per layer and per multi-link inode, as du does), so
a peak that grew with the file count would mean the walk keeps something per file.

The result is written with ``_bench.record`` to
``benchmarks/results/capacity_breakdown-<quiet|loaded>-<time>.json``: ratios
``median_vs_du_<files>`` and ``cpu_vs_du_<files>`` per file count, and the memory of the largest
tree against the smallest (``maxrss_<large>_vs_<small>``, ``traced_peak_<large>_vs_<small>``).
``benchmarks/regression.py capacity_breakdown --condition quiet`` compares the two newest.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
import _bench  # noqa: E402
from collection_path import collections_root  # noqa: E402

sys.path.insert(0, collections_root())
from ansible_collections.dockerhost.storage.plugins.module_utils._tree_usage import (  # noqa: E402
    WORKERS,
    tree_usage,
)

C_ENV = dict(os.environ, LANG="C", LC_ALL="C")
LAYERS = 250  # fixed, so that a larger tree means larger layers, not more of them
HARD_LINKS_PER_LAYER = 4
FILES_PER_DIR = 20
# What the issue asks at 100,000 files, per condition: the median wall time against du's, and
# memory flat in the file count (the largest tree against the smallest, 10% for noise).
TARGETS = {
    "quiet": {
        "median_vs_du_100000": 1.0,
        "maxrss_200000_vs_100000": 1.1,
        "traced_peak_200000_vs_100000": 1.1,
    },
    "loaded": {
        "median_vs_du_100000": 1.2,
        "maxrss_200000_vs_100000": 1.1,
        "traced_peak_200000_vs_100000": 1.1,
    },
}


def make_tree(root, files):
    """Write an overlay2-shaped data-root of about ``files`` inodes below ``root``."""
    layers = LAYERS
    per_layer = max(1, files // layers)
    os.makedirs(os.path.join(root, "overlay2", "l"))
    written = 0
    for layer in range(layers):
        layer_id = "%064x" % (layer * 7919 + 1)
        layer_dir = os.path.join(root, "overlay2", layer_id)
        os.makedirs(os.path.join(layer_dir, "work", "work"))
        short = "L%025d" % layer
        os.symlink("../%s/diff" % layer_id, os.path.join(root, "overlay2", "l", short))
        with open(os.path.join(layer_dir, "link"), "w") as handle:
            handle.write(short)
        # Layers differ in size so that the top-N list has something to sort.
        in_layer = per_layer // 2 + (layer * 37) % per_layer
        previous = None
        for index in range(in_layer):
            directory = os.path.join(
                layer_dir, "diff", "usr", "lib", "pkg%d" % (index // FILES_PER_DIR)
            )
            if index % FILES_PER_DIR == 0:
                os.makedirs(directory)
            path = os.path.join(directory, "f%d" % index)
            if index < HARD_LINKS_PER_LAYER * 2 and index % 2 and previous:
                os.link(previous, path)  # hard links, counted once
            else:
                with open(path, "wb") as handle:
                    handle.write(b"x" * (index % 9000))
                previous = path
            written += 1
        chain = os.path.join(root, "image", "overlay2", "layerdb", "sha256", layer_id)
        os.makedirs(chain)
        for name in ("cache-id", "diff", "size"):
            with open(os.path.join(chain, name), "w") as handle:
                handle.write(layer_id)
        written += 10
    for container in range(max(1, layers // 10)):
        directory = os.path.join(root, "containers", "%064x" % container)
        os.makedirs(os.path.join(directory, "mounts", "shm"))
        for name in ("config.v2.json", "hostconfig.json", "hostname", "hosts"):
            with open(os.path.join(directory, name), "w") as handle:
                handle.write("{}")
    volume = os.path.join(root, "volumes", "data", "_data")
    os.makedirs(volume)
    for index in range(200):
        with open(os.path.join(volume, "v%d" % index), "w") as handle:
            handle.write("v")
    return written


def cpu_seconds():
    """User and system time of this process and its waited-for children (du, the walkers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def timed(call):
    """A step for ``_bench.alternate``: runs ``call`` and returns its wall and CPU seconds and
    the totals it counted."""

    def step():
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        totals = call()
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "cpu": cpu_seconds() - cpu_before, "totals": totals}

    return step


def du_inodes(path):
    out = subprocess.run(
        ["du", "-x", "--inodes", "-s", path], env=C_ENV, capture_output=True, text=True, check=True
    ).stdout
    return {"inodes": int(out.split()[0])}


def du_bytes(path):
    out = subprocess.run(
        ["du", "-x", "-s", "-B1", path], env=C_ENV, capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[0])


def breakdown(path):
    result = tree_usage(path)
    return {"inodes": result["inodes"], "bytes": result["bytes"], "skipped": result["skipped"]}


CHILD = r"""
import json, sys, tracemalloc
sys.path.insert(0, sys.argv[2])
from ansible_collections.dockerhost.storage.plugins.module_utils._tree_usage import tree_usage
path, workers, trace = sys.argv[1], int(sys.argv[3]), sys.argv[4] == "trace"
if trace:
    tracemalloc.start()
inodes = tree_usage(path, **({"workers": workers} if workers else {}))["inodes"] if path else 0
print(json.dumps({"tracemalloc_peak": tracemalloc.get_traced_memory()[1] if trace else None,
                  "inodes": inodes}))
"""


def memory_child(path, workers=0, trace=False):
    """Run the breakdown of ``path`` (nothing for "") in a child: ``workers`` 0 for the module's
    default; ``trace`` for tracemalloc. Returns its figures and its peak RSS (KiB), which
    ``wait4`` gives as the largest of the child and the walkers it waited for."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            path,
            collections_root(),
            str(workers),
            "trace" if trace else "plain",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    out = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError("the memory child failed with status %d" % status)
    return json.loads(out), usage.ru_maxrss


def breakdown_memory(path):
    """Peak RSS of the walk as capacity_info runs it; traced peak of a walk in one process
    (tracemalloc does not see the allocations of forked walkers)."""
    _figures, maxrss = memory_child(path)
    traced, _maxrss = memory_child(path, workers=1, trace=True)
    return {"maxrss_kib": maxrss, "tracemalloc_peak_bytes": traced["tracemalloc_peak"]}


class Place:
    """Where a tree lives: a loop-mounted ext4 (as root) or a temporary directory."""

    def __init__(self, files, workdir):
        self.files = files
        self.dir = tempfile.mkdtemp(prefix="capacity-bench-", dir=workdir)
        self.device = None
        self.mount = None
        if os.geteuid() == 0 and shutil.which("mkfs.ext4"):
            image = os.path.join(self.dir, "image")
            size_mb = max(512, files * 12 // 1024)
            with open(image, "wb") as handle:
                handle.truncate(size_mb * 1024 * 1024)
            inodes = str(files * 2)
            subprocess.run(
                ["mkfs.ext4", "-q", "-F", "-T", "default", "-N", inodes, image],
                env=C_ENV,
                check=True,
            )
            self.device = subprocess.run(
                ["losetup", "--find", "--show", "--", image],
                env=C_ENV,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            self.mount = os.path.join(self.dir, "mnt")
            os.mkdir(self.mount)
            subprocess.run(["mount", "-t", "ext4", self.device, self.mount], check=True)
            self.root = os.path.join(self.mount, "docker")
        else:
            self.root = os.path.join(self.dir, "docker")
        os.makedirs(self.root)
        started = time.perf_counter()
        self.written = make_tree(self.root, files)
        self.build_seconds = time.perf_counter() - started

    def remove(self):
        if self.mount:
            subprocess.run(["umount", self.mount], check=True)
            subprocess.run(["losetup", "--detach", self.device], check=True)
        shutil.rmtree(self.dir)


def rounds_of(place, rounds):
    """Warm the cache with one walk of each, then ``rounds`` alternating rounds."""
    du_inodes(place.root)
    breakdown(place.root)
    return _bench.alternate(
        rounds,
        {
            "du": timed(lambda: du_inodes(place.root)),
            "breakdown": timed(lambda: breakdown(place.root)),
        },
    )


def median_of(runs, key):
    return statistics.median(run[key] for run in runs)


def totals_agree(runs, du_total_bytes):
    """Every round of the breakdown counted du's inodes and bytes, and skipped nothing."""
    du_counts = {run["totals"]["inodes"] for run in runs["du"]}
    return len(du_counts) == 1 and all(
        run["totals"]["inodes"] in du_counts
        and run["totals"]["bytes"] == du_total_bytes
        and run["totals"]["skipped"] == 0
        for run in runs["breakdown"]
    )


def summarise(place, runs, memory, workdir):
    """One row of the result: totals, times, ratios and memory of one tree."""
    du_runs, walk_runs = runs["du"], runs["breakdown"]
    du_total_bytes = du_bytes(place.root)
    row = {
        "files": place.files,
        "files_written": place.written,
        "inodes": walk_runs[-1]["totals"]["inodes"],
        "du_inodes": du_runs[-1]["totals"]["inodes"],
        "bytes": walk_runs[-1]["totals"]["bytes"],
        "du_bytes": du_total_bytes,
        "totals_agree": totals_agree(runs, du_total_bytes),
        "on": "loop ext4" if place.mount else "directory in %s" % workdir,
        "build_seconds": round(place.build_seconds, 1),
        "rounds": len(du_runs),
        "du_median_s": round(median_of(du_runs, "seconds"), 4),
        "breakdown_median_s": round(median_of(walk_runs, "seconds"), 4),
        "du_min_s": round(min(run["seconds"] for run in du_runs), 4),
        "breakdown_min_s": round(min(run["seconds"] for run in walk_runs), 4),
        "du_cpu_median_s": round(median_of(du_runs, "cpu"), 3),
        "breakdown_cpu_median_s": round(median_of(walk_runs, "cpu"), 3),
        "du_times_s": [round(run["seconds"], 4) for run in du_runs],
        "breakdown_times_s": [round(run["seconds"], 4) for run in walk_runs],
    }
    row["ratio"] = round(row["breakdown_median_s"] / row["du_median_s"], 3)
    row["ratio_of_minimums"] = round(row["breakdown_min_s"] / row["du_min_s"], 3)
    row["cpu_ratio"] = round(row["breakdown_cpu_median_s"] / row["du_cpu_median_s"], 3)
    row.update(memory)
    return row


def ratios_of(rows):
    """The ratios regression.py compares: per file count, and memory largest against smallest."""
    ratios = {}
    for row in rows:
        ratios["median_vs_du_%d" % row["files"]] = row["ratio"]
        ratios["cpu_vs_du_%d" % row["files"]] = row["cpu_ratio"]
    small = min(rows, key=lambda row: row["files"])
    large = max(rows, key=lambda row: row["files"])
    if large is not small:
        pair = (large["files"], small["files"])
        ratios["maxrss_%d_vs_%d" % pair] = large["maxrss_kib"] / small["maxrss_kib"]
        ratios["traced_peak_%d_vs_%d" % pair] = (
            large["tracemalloc_peak_bytes"] / small["tracemalloc_peak_bytes"]
        )
    return ratios


def print_row(row):
    print(
        "%7d inodes (du %d): median breakdown %.3f s, du %.3f s, ratio %.2f "
        "(fastest runs %.2f, CPU time %.2f); peak RSS %d KiB, traced peak %d KiB; "
        "bytes %d (du %d)%s"
        % (
            row["inodes"],
            row["du_inodes"],
            row["breakdown_median_s"],
            row["du_median_s"],
            row["ratio"],
            row["ratio_of_minimums"],
            row["cpu_ratio"],
            row["maxrss_kib"],
            row["tracemalloc_peak_bytes"] // 1024,
            row["bytes"],
            row["du_bytes"],
            "" if row["totals_agree"] else "; TOTALS DIFFER",
        ),
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--files", type=int, nargs="+", default=[100000, 200000])
    parser.add_argument("--workdir", default="/var/tmp")
    _bench.add_common_arguments(parser)
    args = parser.parse_args()
    machine = _bench.machine_state()
    machine["loadavg_before"] = machine.pop("loadavg")
    places = []
    try:
        for files in args.files:
            places.append(Place(files, args.workdir))
        # Write the new trees out before timing: otherwise the kernel's writeback of them (loop
        # device, backing file) competes for the CPUs during the first rounds, and the walk in
        # several processes loses more to it than du in one (measured: 0.26 s rising to 0.43 s
        # over five rounds while du stayed at 0.32 s).
        os.sync()
        runs = {}
        with _bench.cpu_load(args.load):
            machine["loadavg_at_first_round"] = _bench.machine_state()["loadavg"]
            for place in places:
                runs[place.files] = rounds_of(place, args.rounds)
            machine["loadavg_after"] = _bench.machine_state()["loadavg"]
        rows = []
        for place in places:
            rows.append(
                summarise(place, runs[place.files], breakdown_memory(place.root), args.workdir)
            )
            print_row(rows[-1])
    finally:
        for place in places:
            place.remove()
    result = {
        "machine": machine,
        "rounds": args.rounds,
        "workers": WORKERS,
        "baseline_maxrss_kib": memory_child("")[1],
        "rows": rows,
    }
    path = _bench.record("capacity_breakdown", args.load, result, ratios_of(rows), TARGETS)
    print(
        "load average before %s, at the first round %s, after %s; baseline RSS %d KiB; "
        "written %s"
        % (
            machine["loadavg_before"],
            machine["loadavg_at_first_round"],
            machine["loadavg_after"],
            result["baseline_maxrss_kib"],
            os.path.relpath(path, REPO),
        )
    )
    if not all(row["totals_agree"] for row in rows):
        sys.exit("the breakdown's totals differ from du's")


if __name__ == "__main__":
    main()
