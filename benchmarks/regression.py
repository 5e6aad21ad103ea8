"""Compare the newest recorded result of a benchmark with the one recorded before it.

    .venv/bin/python benchmarks/regression.py relocation [--condition quiet] [--tolerance 0.10]

Reads ``benchmarks/results/<benchmark>-<condition>-*.json`` (see ``benchmarks/_bench.py``),
prints every ratio of the two newest side by side with its target, and exits 1 when a ratio
grew by more than ``--tolerance`` (relative) or misses its target. Not part of CI: the figures
mean something only on a machine in the stated condition.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def recorded(benchmark, condition):
    pattern = os.path.join(HERE, "results", "%s-%s-*.json" % (benchmark, condition))
    return sorted(glob.glob(pattern))


def compare(previous, newest, tolerance):
    """Lines to print and whether the newest run regressed or misses a target."""
    lines, failed = [], False
    for name, value in sorted(newest["ratios"].items()):
        before = previous["ratios"].get(name) if previous else None
        target = newest["targets"].get(name)
        verdict = []
        if before is not None and value > before * (1 + tolerance):
            verdict.append("REGRESSED (was %.3f)" % before)
            failed = True
        if target is not None and value > target:
            verdict.append("MISSES target %.2f" % target)
            failed = True
        lines.append(
            "%-28s %8s -> %.3f  %s"
            % (name, "-" if before is None else "%.3f" % before, value, " ".join(verdict) or "ok")
        )
    return lines, failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("benchmark")
    parser.add_argument("--condition", choices=("quiet", "loaded"), default="quiet")
    parser.add_argument("--tolerance", type=float, default=0.10)
    args = parser.parse_args()
    files = recorded(args.benchmark, args.condition)
    if not files:
        sys.exit("no recorded %s result for %s" % (args.condition, args.benchmark))
    with open(files[-1], encoding="utf-8") as handle:
        newest = json.load(handle)
    previous = None
    if len(files) > 1:
        with open(files[-2], encoding="utf-8") as handle:
            previous = json.load(handle)
    print(
        "%s, %s: %s against %s"
        % (
            args.benchmark,
            args.condition,
            os.path.basename(files[-1]),
            os.path.basename(files[-2]) if previous else "nothing recorded before",
        )
    )
    lines, failed = compare(previous, newest, args.tolerance)
    print("\n".join(lines))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
