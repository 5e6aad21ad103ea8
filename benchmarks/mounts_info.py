"""Benchmark: mounts_info against the naive check, with 200 running containers.

Run as root from the repository root, after scripts/setup-host has built the busybox image:

    .venv/bin/python benchmarks/mounts_info.py [--containers 200] [--rounds 3]

It makes a 1 GiB ext4 loop filesystem, starts a private dockerd (overlay2) on it, imports the
busybox image and starts the containers (``sleep 3600``, no network). Then, side by side, each
``--rounds`` times:

- ``core``: the module's work, ``collect()`` of plugins/module_utils/_mounts_report.py called in a child
  Python process (no ansible), with ``check_store`` false and no probe; wall time of the call,
  and the child's peak resident memory (``ru_maxrss``, interpreter included);
- ``core_store``: the same with ``check_store: true``;
- ``ansible``: the module run through ``ansible localhost -m dockerhost.storage.mounts_info``
  (wall time of the whole command, ansible's own start-up included);
- ``naive``: ``docker inspect`` (Debian's /usr/bin/docker) once per container, then a search of
  /proc/self/mountinfo for its merged directory: a Python loop over subprocess calls.

Medians are printed and written to benchmarks/results/mounts_info-<UTC time>.json. The target:
``core`` at most 0.2 times ``naive``, and its peak memory under 50 MiB. Everything it made is torn
down at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))

from ansible_module import run_module  # noqa: E402
from collection_path import collections_root  # noqa: E402
from harness import BUSYBOX, DockerdFactory, LoopfsFactory, import_image  # noqa: E402
from harness.dockerd import DOCKER_CLI  # noqa: E402

RESULTS = os.path.join(REPO, "benchmarks", "results")

# Runs in a fresh interpreter so that its peak memory is the module's work alone.
CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.dockerhost.storage.plugins.module_utils._mounts_report import collect
params = dict(
    docker_host=sys.argv[2], timeout=30, data_root=None, containers=None,
    check_store=sys.argv[3] == "store", probe=False, probe_image=None,
    mountinfo_path="/proc/self/mountinfo", fail_on_problems=False,
)
started = time.perf_counter()
report = collect(params)
elapsed = time.perf_counter() - started
print(json.dumps({
    "seconds": elapsed,
    "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "ok": report["ok"],
    "containers": report["summary"]["containers"],
}))
"""


def run_core(docker_host, store):
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, collections_root(), docker_host, "store" if store else ""],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, LANG="C", LC_ALL="C"),
    )
    return json.loads(completed.stdout)


def run_naive(socket_path, container_ids):
    """docker inspect per container, then look for its merged dir in mountinfo."""
    env = dict(os.environ, LANG="C", LC_ALL="C")
    started = time.perf_counter()
    mounted = 0
    for container_id in container_ids:
        completed = subprocess.run(
            [DOCKER_CLI, "--host=unix://" + socket_path, "inspect", container_id],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        merged = json.loads(completed.stdout)[0]["GraphDriver"]["Data"]["MergedDir"]
        with open("/proc/self/mountinfo", encoding="utf-8") as handle:
            if any(line.split(" ")[4] == merged for line in handle):
                mounted += 1
    return time.perf_counter() - started, mounted


def start_containers(daemon, count, ids):
    """Create and start ``count`` containers; their ids go into ``ids`` as they start."""
    for index in range(count):
        answer = daemon.api(
            "POST",
            "/containers/create?name=bench%03d" % index,
            body={
                "Image": BUSYBOX.name,
                "Cmd": ["sleep", "3600"],
                "NetworkDisabled": True,
                "HostConfig": {"NetworkMode": "none"},
            },
        )
        daemon.api("POST", "/containers/%s/start" % answer["Id"])
        ids.append(answer["Id"])


def remove_containers(daemon, ids):
    """Remove the containers before the daemon stops: a dockerd stopped (or killed) with running
    containers can leave their processes behind, holding the loop filesystem busy."""
    for container_id in ids:
        try:
            daemon.api("DELETE", "/containers/%s?force=1" % container_id)
        except Exception as error:  # keep removing the others
            print("could not remove %s: %s" % (container_id, error), file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark mounts a loop filesystem and starts dockerd")

    workdir = tempfile.mkdtemp(prefix="bench-mounts-info-")
    loops = LoopfsFactory(workdir)
    daemons = DockerdFactory(log_dir=workdir)
    daemon, ids = None, []
    try:
        fs = loops("ext4", size_mb=1024)
        daemon = daemons(os.path.join(fs.mount_point, "docker"), storage_driver="overlay2")
        daemon.assert_started()
        import_image(daemon, BUSYBOX)
        started = time.perf_counter()
        start_containers(daemon, args.containers, ids)
        print("%d containers started in %.1f s" % (len(ids), time.perf_counter() - started))
        docker_host = "unix://" + daemon.socket

        rounds = {"core": [], "core_store": [], "ansible": [], "naive": []}
        for round_number in range(args.rounds):
            core = run_core(docker_host, store=False)
            assert core["ok"] and core["containers"] == len(ids), core
            rounds["core"].append(core)
            core_store = run_core(docker_host, store=True)
            assert core_store["ok"], core_store
            rounds["core_store"].append(core_store)
            started = time.perf_counter()
            result = run_module("mounts_info", {"docker_host": docker_host})
            rounds["ansible"].append({"seconds": time.perf_counter() - started})
            assert result.get("ok") is True, result.get("msg")
            seconds, mounted = run_naive(daemon.socket, ids)
            assert mounted == len(ids)
            rounds["naive"].append({"seconds": seconds})
            print(
                "round %d: core %.3f s (%.1f MiB), core+store %.3f s, ansible %.3f s, naive %.3f s"
                % (
                    round_number + 1,
                    core["seconds"],
                    core["max_rss_kib"] / 1024,
                    core_store["seconds"],
                    rounds["ansible"][-1]["seconds"],
                    seconds,
                )
            )

        def median(name, key="seconds"):
            return statistics.median(r[key] for r in rounds[name])

        summary = {
            "containers": len(ids),
            "rounds": args.rounds,
            "engine": daemon.info().get("ServerVersion"),
            "kernel": os.uname().release,
            "core_seconds": median("core"),
            "core_max_rss_mib": max(r["max_rss_kib"] for r in rounds["core"]) / 1024,
            "core_store_seconds": median("core_store"),
            "core_store_max_rss_mib": max(r["max_rss_kib"] for r in rounds["core_store"]) / 1024,
            "ansible_seconds": median("ansible"),
            "naive_seconds": median("naive"),
        }
        summary["core_vs_naive"] = summary["core_seconds"] / summary["naive_seconds"]
        summary["ansible_vs_naive"] = summary["ansible_seconds"] / summary["naive_seconds"]
        summary["target_met"] = summary["core_vs_naive"] <= 0.2 and summary["core_max_rss_mib"] < 50
        print(json.dumps(summary, indent=2))
        os.makedirs(RESULTS, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        with open(os.path.join(RESULTS, "mounts_info-%s.json" % stamp), "w") as handle:
            json.dump({"summary": summary, "rounds": rounds}, handle, indent=2)
        return 0 if summary["target_met"] else 1
    finally:
        if daemon is not None and daemon.started:
            remove_containers(daemon, ids)
        daemons.stop_all()
        loops.destroy_all()
        subprocess.run(["rm", "-rf", workdir], check=False)


if __name__ == "__main__":
    sys.exit(main())
