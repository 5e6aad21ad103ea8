"""Benchmark: capacity_info's breakdown walk against ``du -x --inodes -s`` on the same tree.

    sudo .venv/bin/python benchmarks/capacity_breakdown.py [--files 100000 250000] [--runs 11]

For each file count it builds an overlay2-shaped data-root (250 layers ``overlay2/<id>/diff``
full of small files and four hard links each, ``overlay2/l`` symlinks, ``image/`` layer
metadata, ``containers/``, ``volumes/``) on a fresh loop-mounted ext4 (as root; otherwise in a
temporary directory), warms the cache with one walk of each, then runs du and the breakdown
alternately ``--runs`` times. It reports the median wall times and their ratio, the ratio of
the fastest runs and of the CPU time both used (on a shared machine the wall times swing with
the load of others), and checks that both totals agree.

Peak memory is measured in a child process that runs only the breakdown: its maximum resident
set size (``wait4``) and the peak of Python allocations (``tracemalloc``). The layer count and
the hard links stay the same at every size (the walk keeps one small record per layer and per
multi-link inode, as du does), so a peak that grew with the file count would mean the walk
keeps something per file. Results are printed and written as JSON to
``benchmarks/results/capacity_breakdown-<time>.json``.
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
from collection_path import collections_root  # noqa: E402

sys.path.insert(0, collections_root())
from ansible_collections.dockerhost.storage.plugins.module_utils._tree_usage import (  # noqa: E402
    tree_usage,
)

C_ENV = dict(os.environ, LANG="C", LC_ALL="C")
LAYERS = 250  # fixed, so that a larger tree means larger layers, not more of them
HARD_LINKS_PER_LAYER = 4
FILES_PER_DIR = 20


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
    """User and system time of this process and its waited-for children (du, the workers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def du_inodes(path):
    started = time.perf_counter()
    out = subprocess.run(
        ["du", "-x", "--inodes", "-s", path], env=C_ENV, capture_output=True, text=True, check=True
    ).stdout
    return time.perf_counter() - started, int(out.split()[0])


def du_bytes(path):
    out = subprocess.run(
        ["du", "-x", "-s", "-B1", path], env=C_ENV, capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[0])


def breakdown(path):
    started = time.perf_counter()
    result = tree_usage(path)
    return time.perf_counter() - started, result


CHILD = r"""
import json, sys, tracemalloc
sys.path.insert(0, sys.argv[2])
from ansible_collections.dockerhost.storage.plugins.module_utils._tree_usage import tree_usage
tracemalloc.start()
result = tree_usage(sys.argv[1])
print(json.dumps({"tracemalloc_peak": tracemalloc.get_traced_memory()[1],
                  "inodes": result["inodes"]}))
"""


def breakdown_memory(path):
    """Peak RSS and peak traced Python allocations of a child that only runs the breakdown."""
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, path, collections_root()], stdout=subprocess.PIPE, text=True
    )
    out = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError("the memory child failed with %d" % process.returncode)
    figures = json.loads(out)
    figures["maxrss_kib"] = usage.ru_maxrss
    return figures


def baseline_memory():
    """Peak RSS of a child that imports the same modules and walks nothing."""
    code = CHILD.replace("result = tree_usage(sys.argv[1])", 'result = {"inodes": 0}')
    process = subprocess.Popen(
        [sys.executable, "-c", code, "/", collections_root()], stdout=subprocess.PIPE, text=True
    )
    process.stdout.read()
    _pid, _status, usage = os.wait4(process.pid, 0)
    return usage.ru_maxrss


class Place:
    """Where a tree lives: a loop-mounted ext4 (as root) or a temporary directory."""

    def __init__(self, files, workdir):
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

    def remove(self):
        if self.mount:
            subprocess.run(["umount", self.mount], check=True)
            subprocess.run(["losetup", "--detach", self.device], check=True)
        shutil.rmtree(self.dir)


def measure(files, runs, workdir):
    place = Place(files, workdir)
    try:
        started = time.perf_counter()
        written = make_tree(place.root, files)
        build_seconds = time.perf_counter() - started
        # Warm the cache for both (and the page cache of both programs) before timing.
        du_inodes(place.root)
        breakdown(place.root)
        du_times, walk_times, du_cpu, walk_cpu = [], [], [], []
        for run in range(runs):
            # Alternate which goes first, so that a change of load in between hits both.
            for which in ("du", "walk") if run % 2 == 0 else ("walk", "du"):
                before = cpu_seconds()
                if which == "du":
                    seconds, du_count = du_inodes(place.root)
                    du_cpu.append(cpu_seconds() - before)
                    du_times.append(seconds)
                else:
                    seconds, result = breakdown(place.root)
                    walk_cpu.append(cpu_seconds() - before)
                    walk_times.append(seconds)
        memory = breakdown_memory(place.root)
        row = {
            "files_written": written,
            "inodes": result["inodes"],
            "du_inodes": du_count,
            "bytes": result["bytes"],
            "du_bytes": du_bytes(place.root),
            "on": "loop ext4" if place.mount else "directory in %s" % workdir,
            "build_seconds": round(build_seconds, 1),
            "runs": runs,
            "du_median_s": round(statistics.median(du_times), 4),
            "breakdown_median_s": round(statistics.median(walk_times), 4),
            "du_min_s": round(min(du_times), 4),
            "breakdown_min_s": round(min(walk_times), 4),
            "du_cpu_median_s": round(statistics.median(du_cpu), 3),
            "breakdown_cpu_median_s": round(statistics.median(walk_cpu), 3),
            "loadavg": os.getloadavg()[0],
            "du_times_s": [round(t, 4) for t in du_times],
            "breakdown_times_s": [round(t, 4) for t in walk_times],
            "maxrss_kib": memory["maxrss_kib"],
            "tracemalloc_peak_bytes": memory["tracemalloc_peak"],
        }
        row["ratio"] = round(row["breakdown_median_s"] / row["du_median_s"], 3)
        row["ratio_of_minimums"] = round(row["breakdown_min_s"] / row["du_min_s"], 3)
        row["cpu_ratio"] = round(row["breakdown_cpu_median_s"] / row["du_cpu_median_s"], 3)
        return row
    finally:
        place.remove()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--files", type=int, nargs="+", default=[100000, 200000])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--workdir", default="/var/tmp")
    args = parser.parse_args()
    report = {
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "baseline_maxrss_kib": baseline_memory(),
        "rows": [],
    }
    for files in args.files:
        row = measure(files, args.runs, args.workdir)
        report["rows"].append(row)
        print(
            "%7d inodes (du %d): median breakdown %.3f s, du %.3f s, ratio %.2f "
            "(fastest runs %.2f, CPU time %.2f, load %.1f); "
            "peak RSS %d KiB, traced peak %d KiB; bytes %d (du %d)"
            % (
                row["inodes"],
                row["du_inodes"],
                row["breakdown_median_s"],
                row["du_median_s"],
                row["ratio"],
                row["ratio_of_minimums"],
                row["cpu_ratio"],
                row["loadavg"],
                row["maxrss_kib"],
                row["tracemalloc_peak_bytes"] // 1024,
                row["bytes"],
                row["du_bytes"],
            ),
            flush=True,
        )
    report["loadavg_after"] = os.getloadavg()
    results = os.path.join(REPO, "benchmarks", "results")
    os.makedirs(results, exist_ok=True)
    name = time.strftime("capacity_breakdown-%Y%m%dT%H%M%SZ.json", time.gmtime())
    with open(os.path.join(results, name), "w") as handle:
        json.dump(report, handle, indent=2)
    print("baseline RSS %d KiB; written %s" % (report["baseline_maxrss_kib"], name))


if __name__ == "__main__":
    main()
