"""Reclaim against ``docker system prune -af``, each on the same crowded store.

    sudo flock /var/tmp/dockerhost-heavy.lock .venv/bin/python benchmarks/reclaim.py
        [--rounds 3] [--load 2] [--target-inodes 20]

Every call of a round builds a fresh state (tests/integration/harness/crowded_store.py): a
private dockerd (the host's 20.10, overlay2) whose data-root is alone on a 256 MB ext4 of
about 6000 inodes (``mkfs -N 6000``), the busybox test image imported, then filled to 97% of
its inodes by BuildKit cache, dangling and unused images of small files, stopped containers,
an orphaned layer directory, a kept image and container, a running container with a named
volume, and a last stopped container of small files. The state is synced to disk before the
clock starts. Then one of:

- reclaim: ``ansible localhost -m dockerhost.storage.reclaim`` (as an operator runs it; its
  start-up included) with ``target_free_inodes_percent`` 20, ``target_free_bytes_percent`` 0
  and every age threshold ``0s``. Also recorded: the task's own duration from the json
  callback (AnsiballZ, the module's interpreter and the run, without ansible's start-up).
- prune: ``/usr/bin/docker --host unix://... system prune -af`` (no ``--volumes``).
- ping (no state): ``ansible localhost -m ansible.builtin.ping`` the same way, the floor any
  module run through ansible pays (wall and task), recorded beside the two.

Objects removed are counted alike for both, from the engine before and after: containers
(``/containers/json?all=1``), images (``/images/json?all=1``) and build cache records
(``/system/df``). Networks are left out: the private dockerd runs with ``--bridge=none`` and
has only its predefined networks, which prune never removes. Layer directories under
``overlay2/`` (``l`` excepted) are counted too, but apart. reclaim's own ``removed_objects``
is recorded beside the engine's count. Both must leave at least the target of free inodes
(``os.statvfs``); a call that does not fails the benchmark.

The rounds alternate which tool goes first; ratios are of the medians (reclaim / prune):
``objects`` (target at most 0.5) and ``wall`` (at most 1.5). ``--load N`` keeps N processes
busy meanwhile (``loaded``; without it, ``quiet``). Results are printed and recorded as
benchmarks/results/reclaim-<condition>-<time>.json (see benchmarks/_bench.py).

``--profile`` instead builds one state and runs ``_reclaim.reclaim`` on it under cProfile in a
fresh interpreter (no ansible), with the options above and the module's defaults for the
rest; it prints the interpreter's start-up, the import, the run, each step's removals and
freed inodes, and the functions that took the most time. Nothing is recorded.
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
from datetime import datetime

import _bench

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))

import ansible_module  # noqa: E402
from collection_path import collections_root  # noqa: E402
from harness import (  # noqa: E402
    BUSYBOX,
    DockerdFactory,
    LoopfsFactory,
    crowded_store,
    import_image,
)
from harness.dockerd import DOCKER_CLI  # noqa: E402

FILL_PERCENT = 97.0
AGES_AT_ONCE = {
    "dangling_images_older_than": "0s",
    "stopped_containers_older_than": "0s",
    "unused_images_older_than": "0s",
    "orphaned_layers_older_than": "0s",
}

# Runs in a fresh interpreter, as the module does under ansible (without AnsiballZ).
PROFILED = r"""
import cProfile, io, json, pstats, sys, time
started = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from ansible_collections.dockerhost.storage.plugins.module_utils import _reclaim, _reclaim_policy
imported = time.perf_counter() - started
params = dict(
    docker_host=sys.argv[2], lock_timeout=120, lock_token=None,
    target_free_inodes_percent=float(sys.argv[3]), target_free_bytes_percent=0.0,
    steps=list(_reclaim_policy.DEFAULT_STEPS), keep_label=_reclaim_policy.DEFAULT_KEEP_LABEL,
    data_root=None, containerd_root=None, mountinfo_path="/proc/self/mountinfo",
    fail_when_unreached=True,
)
params.update(_reclaim_policy.AGE_OPTIONS)
params.update(_reclaim_policy.SIZE_OPTIONS)
params.update(json.loads(sys.argv[4]))
profile = cProfile.Profile()
started = time.perf_counter()
profile.enable()
_reclaim.prepare(params)
profile.disable()
prepare_seconds = time.perf_counter() - started
started = time.perf_counter()
profile.enable()
result, failure = _reclaim.reclaim(params, False)
profile.disable()
run_seconds = time.perf_counter() - started
out = io.StringIO()
pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(35)
print(json.dumps({
    "import_seconds": imported, "prepare_alone_seconds": prepare_seconds,
    "reclaim_seconds": run_seconds, "failure": failure,
    "steps": [{"step": e["step"], "removed": [(o["kind"], o["name"], o["inodes"]) for o in e["removed"]],
               "freed": e["freed"]} for e in result["steps"]],
}, indent=1))
print(out.getvalue())
"""
TARGETS = {"objects": 0.5, "wall": 1.5}


def count_objects(daemon):
    """What the engine holds (containers, images, build cache records) and the layer
    directories of the overlay2 store."""
    usage = daemon.api("GET", "/system/df")
    home = os.path.join(daemon.data_root, "overlay2")
    return {
        "containers": len(daemon.api("GET", "/containers/json?all=1")),
        "images": len(daemon.api("GET", "/images/json?all=1")),
        "build_cache": len(usage.get("BuildCache") or []),
        "layer_dirs": sum(1 for name in os.listdir(home) if name != "l"),
    }


def engine_objects(counts):
    return counts["containers"] + counts["images"] + counts["build_cache"]


def free_inodes_percent(path):
    st = os.statvfs(path)
    return round(st.f_ffree * 100.0 / st.f_files, 2)


def build_state(workdir):
    """A fresh crowded store on its own filesystem and dockerd; returns (daemon, loops,
    daemons, seconds it took)."""
    started = time.monotonic()
    loops = LoopfsFactory(tempfile.mkdtemp(prefix="loopfs-", dir=workdir))
    daemons = DockerdFactory(log_dir=workdir)
    try:
        fs = loops("ext4", size_mb=256, mkfs_args=("-N", "6000"))
        daemon = daemons(os.path.join(fs.mount_point, "docker"), storage_driver="overlay2")
        daemon.assert_started()
        import_image(daemon, BUSYBOX)
        crowded_store.fill(
            daemon, BUSYBOX.name, FILL_PERCENT, tempfile.mkdtemp(prefix="fill-", dir=workdir)
        )
    except BaseException:
        tear_down(None, loops, daemons)
        raise
    os.sync()
    return daemon, loops, daemons, time.monotonic() - started


def tear_down(daemon, loops, daemons):
    """Remove the containers first (a dockerd stopped with a running container can leave its
    process behind, holding the filesystem busy), then the daemon and the filesystem."""
    if daemon is not None and daemon.started:
        for container in daemon.api("GET", "/containers/json?all=1"):
            daemon.api("DELETE", "/containers/%s?force=1" % container["Id"])
    try:
        daemons.stop_all()
    finally:
        loops.destroy_all()


def _task_seconds(output):
    duration = output["plays"][0]["tasks"][0]["task"]["duration"]
    start, end = (datetime.fromisoformat(duration[key].rstrip("Z")) for key in ("start", "end"))
    return (end - start).total_seconds()


def run_reclaim(daemon, target):
    """The module through ansible; returns (wall seconds, task seconds, host result)."""
    args = {
        "docker_host": "unix://" + daemon.socket,
        "target_free_inodes_percent": target,
        "target_free_bytes_percent": 0,
        **AGES_AT_ONCE,
    }
    command, env = ansible_module._command("reclaim", args, False, (), None)
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    result = ansible_module._host_result(completed.returncode, completed.stdout, completed.stderr)
    if result.get("failed"):
        raise AssertionError("reclaim failed: %s" % result.get("msg"))
    return wall, _task_seconds(json.loads(completed.stdout)), result


def run_ping():
    """ansible.builtin.ping as reclaim is run: what ansible costs any module."""
    command = ansible_module._on_localhost("ansible")
    command += ["localhost", "-m", "ansible.builtin.ping"]
    started = time.perf_counter()
    completed = subprocess.run(
        command, capture_output=True, text=True, env=ansible_module._environment(None), check=True
    )
    wall = time.perf_counter() - started
    return {
        "seconds": round(wall, 3),
        "task_seconds": round(_task_seconds(json.loads(completed.stdout)), 3),
    }


def run_prune(daemon):
    started = time.perf_counter()
    subprocess.run(
        [DOCKER_CLI, "--host", "unix://" + daemon.socket, "system", "prune", "-af"],
        check=True,
        capture_output=True,
        env=dict(os.environ, LANG="C", LC_ALL="C"),
    )
    return time.perf_counter() - started


def run_prune_through_ansible(daemon):
    """``docker system prune -af`` as a playbook's cron replacement runs it: one
    ansible.builtin.command task, started the way reclaim is."""
    argv = [DOCKER_CLI, "--host", "unix://" + daemon.socket, "system", "prune", "-af"]
    command = ansible_module._on_localhost("ansible")
    command += ["localhost", "-m", "ansible.builtin.command", "-a", json.dumps({"argv": argv})]
    started = time.perf_counter()
    subprocess.run(
        command, capture_output=True, text=True, env=ansible_module._environment(None), check=True
    )
    return time.perf_counter() - started


def one_call(tool, workdir, target):
    """Build a state, run ``tool`` on it, measure; returns the call's figures."""
    daemon, loops, daemons, built = build_state(workdir)
    try:
        before = count_objects(daemon)
        free_before = free_inodes_percent(daemon.data_root)
        figures = {"build_seconds": round(built, 1)}
        if tool == "reclaim":
            wall, task, result = run_reclaim(daemon, target)
            figures.update(
                task_seconds=round(task, 3),
                removed_objects=result["removed_objects"],
                removed_by_kind=_by_kind(result),
                steps=[entry["step"] for entry in result["steps"]],
                kept=[
                    [entry["step"], item["name"], item["reason"]]
                    for entry in result["steps"]
                    for item in entry["kept"]
                ],
                reached=result["reached"],
            )
        elif tool == "prune_ansible":
            wall = run_prune_through_ansible(daemon)
        else:
            wall = run_prune(daemon)
        after = count_objects(daemon)
        figures.update(
            seconds=round(wall, 3),
            free_inodes_percent_before=free_before,
            free_inodes_percent_after=free_inodes_percent(daemon.data_root),
            before=before,
            after=after,
            engine_objects_removed=engine_objects(before) - engine_objects(after),
            layer_dirs_removed=before["layer_dirs"] - after["layer_dirs"],
        )
    finally:
        tear_down(daemon, loops, daemons)
    if figures["free_inodes_percent_after"] < target:
        raise AssertionError("%s did not reach %s%% free inodes: %s" % (tool, target, figures))
    print(tool, json.dumps(figures), flush=True)
    return figures


def profile(workdir, target):
    """One state; ``_reclaim.reclaim`` on it under cProfile in a fresh interpreter. The
    interpreter's bare start-up is timed apart. (``prepare`` is profiled once alone, then again
    inside ``reclaim``: its figures count twice in the listing.)"""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    print("bare interpreter start-up: %.3f s" % (time.perf_counter() - started))
    daemon, loops, daemons, _built = build_state(workdir)
    try:
        argv = [sys.executable, "-c", PROFILED, collections_root(), "unix://" + daemon.socket]
        argv += [str(target), json.dumps(AGES_AT_ONCE)]
        started = time.perf_counter()
        completed = subprocess.run(argv, capture_output=True, text=True, check=False)
        print("child wall: %.3f s" % (time.perf_counter() - started))
        print(completed.stdout, completed.stderr[-3000:])
    finally:
        tear_down(daemon, loops, daemons)


def _by_kind(result):
    kinds = {}
    for entry in result["steps"]:
        for item in entry["removed"]:
            kinds[item["kind"]] = kinds.get(item["kind"], 0) + 1
    return kinds


def summarise(runs, machine, args):
    """The result document, and the ratios of the medians."""
    reclaim, prune = runs["reclaim"], runs["prune"]

    def median(calls, key):
        return statistics.median(call[key] for call in calls)

    medians = {
        "reclaim_seconds": median(reclaim, "seconds"),
        "reclaim_task_seconds": median(reclaim, "task_seconds"),
        "prune_seconds": median(prune, "seconds"),
        "prune_through_ansible_seconds": median(runs["prune_ansible"], "seconds"),
        "reclaim_objects": median(reclaim, "engine_objects_removed"),
        "reclaim_removed_objects_reported": median(reclaim, "removed_objects"),
        "prune_objects": median(prune, "engine_objects_removed"),
        "reclaim_layer_dirs": median(reclaim, "layer_dirs_removed"),
        "prune_layer_dirs": median(prune, "layer_dirs_removed"),
        "reclaim_free_inodes_percent_after": median(reclaim, "free_inodes_percent_after"),
        "prune_free_inodes_percent_after": median(prune, "free_inodes_percent_after"),
        "ping_seconds": median(runs["ping"], "seconds"),
        "ping_task_seconds": median(runs["ping"], "task_seconds"),
    }
    ratios = {
        "objects": medians["reclaim_objects"] / medians["prune_objects"],
        "wall": medians["reclaim_seconds"] / medians["prune_seconds"],
        # Not a target: the module's task alone, without ansible's start-up.
        "task_vs_prune_wall": medians["reclaim_task_seconds"] / medians["prune_seconds"],
        # Like with like: prune run from ansible as reclaim is (one command task).
        "wall_vs_prune_through_ansible": medians["reclaim_seconds"]
        / medians["prune_through_ansible_seconds"],
    }
    result = {
        "machine": machine,
        "rounds": args.rounds,
        "target_free_inodes_percent": args.target_inodes,
        "fill_used_inodes_percent": FILL_PERCENT,
        "median": {key: round(value, 3) for key, value in medians.items()},
        "reclaim_runs": reclaim,
        "prune_runs": prune,
        "prune_through_ansible_runs": runs["prune_ansible"],
        "ping_runs": runs["ping"],
    }
    return result, ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--target-inodes", type=float, default=20.0)
    parser.add_argument("--workdir", default="/var/tmp/dockerhost-bench")
    parser.add_argument("--profile", action="store_true", help="profile reclaim on one state")
    _bench.add_common_arguments(parser, rounds=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark mounts loop filesystems and starts dockerd")
    if not BUSYBOX.is_cached():
        sys.exit(BUSYBOX.missing_message())
    os.makedirs(args.workdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="reclaim-", dir=args.workdir)
    if args.profile:
        try:
            profile(workdir, args.target_inodes)
        finally:
            subprocess.run(["rm", "-rf", "--one-file-system", "--", workdir], check=False)
        return
    machine = {"before": _bench.machine_state()}
    try:
        with _bench.cpu_load(args.load):
            machine["loaded"] = _bench.machine_state()
            runs = _bench.alternate(
                args.rounds,
                {
                    "reclaim": lambda: one_call("reclaim", workdir, args.target_inodes),
                    "prune": lambda: one_call("prune", workdir, args.target_inodes),
                    "prune_ansible": lambda: one_call("prune_ansible", workdir, args.target_inodes),
                    "ping": run_ping,
                },
            )
            machine["after"] = _bench.machine_state()
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", "--", workdir], check=False)
    result, ratios = summarise(runs, machine, args)
    targets = {condition: dict(TARGETS) for condition in ("quiet", "loaded")}
    path = _bench.record("reclaim", args.load, result, ratios, targets)
    print(json.dumps({"ratios": ratios, "median": result["median"]}, indent=2))
    print("recorded", os.path.relpath(path, REPO))


if __name__ == "__main__":
    main()
