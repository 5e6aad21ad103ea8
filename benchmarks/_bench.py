"""What every benchmark here shares: the machine's state, a load of known size, alternating
rounds, and results recorded as JSON that ``benchmarks/regression.py`` compares.

A result file is ``benchmarks/results/<benchmark>-<condition>-<UTC time>.json`` holding at least:

- ``benchmark``: its name; ``condition``: ``quiet`` or ``loaded`` (``--load N`` given);
- ``machine``: CPUs, kernel, and the load average before and after;
- ``ratios``: each measured ratio to its baseline (the medians over the rounds), lower is better;
- ``targets``: the largest ratio each is allowed, for this condition.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import platform
import signal
import statistics
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def add_common_arguments(parser, rounds=5):
    parser.add_argument(
        "--rounds",
        type=int,
        default=rounds,
        help="rounds; each runs every compared command once, alternating which goes first",
    )
    parser.add_argument(
        "--load",
        type=int,
        default=0,
        help="processes that keep a CPU busy while the rounds run (the 'loaded' condition)",
    )


def machine_state():
    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "loadavg": [round(value, 2) for value in os.getloadavg()],
    }


SETTLE_TIMEOUT = 120  # seconds to wait for the load average to show the load


def _burn():
    # A session of its own, as the other services of a host have: the scheduler shares the CPUs
    # between sessions first, so a load inside the benchmark's session would only take shares
    # from its single-process baselines (du, rsync) and flatter the code with several workers.
    os.setsid()
    while True:
        pass


def settle_load(processes):
    """Wait until the one-minute load average shows ``processes`` busy processes (up to the
    number of CPUs): it climbs slowly, and a loaded result recorded under a low figure says
    nothing. Returns the seconds waited."""
    if not processes:
        return 0.0
    wanted = min(processes, os.cpu_count() or 1)
    started = time.monotonic()
    while os.getloadavg()[0] < wanted and time.monotonic() - started < SETTLE_TIMEOUT:
        time.sleep(1)
    return round(time.monotonic() - started, 1)


@contextlib.contextmanager
def cpu_load(processes):
    """``processes`` busy loops, each in a session of its own, for the duration (none for 0),
    the load average settled before anything is measured."""
    workers = []
    context = multiprocessing.get_context("fork")
    for _index in range(processes):
        worker = context.Process(target=_burn, daemon=True)
        worker.start()
        workers.append(worker)
    try:
        settle_load(processes)
        yield
    finally:
        for worker in workers:
            os.kill(worker.pid, signal.SIGKILL)
            worker.join()


def alternate(rounds, steps):
    """Run ``steps`` (name -> callable returning seconds, or a dict with a ``seconds`` key and
    more figures) ``rounds`` times, reversing the order every other round so that a change of
    load hits every step alike. Returns name -> list of what each call returned."""
    names = list(steps)
    runs = {name: [] for name in names}
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            runs[name].append(steps[name]())
    return runs


def median_seconds(values):
    return statistics.median(
        value if isinstance(value, (int, float)) else value["seconds"] for value in values
    )


def record(benchmark, load, result, ratios, targets):
    """Write the result file; returns its path."""
    condition = "loaded" if load else "quiet"
    document = {
        "benchmark": benchmark,
        "condition": condition,
        "load_processes": load,
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": result.pop("machine"),
        "ratios": {name: round(value, 3) for name, value in ratios.items()},
        "targets": targets[condition],
        "met": {
            name: ratios[name] <= limit
            for name, limit in targets[condition].items()
            if name in ratios
        },
    }
    document.update(result)
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(
        RESULTS,
        "%s-%s-%s.json" % (benchmark, condition, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())),
    )
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
    return path
