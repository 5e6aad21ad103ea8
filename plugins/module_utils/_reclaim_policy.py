# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What reclaim may remove and in which order: the ladder of steps, the policy options read
from a module's parameters, the targets, and the plan that walks the ladder until the targets
hold. Pure: every function takes figures and inventories already read.

A candidate is a dict: ``step``, ``kind`` (``build_cache``, ``image``, ``container``,
``layer``, ``log``, ``volume``), ``id``, ``name``, ``filesystem`` (the role of the filesystem
it frees space on: ``data_root`` or ``containerd_root``), ``bytes`` and ``inodes`` (what
removing it is expected to free; None when not known) and ``age_seconds``.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import re

from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError

# The ladder, cheapest to lose first. Logs are truncated, never deleted; named volumes are
# never a candidate of any step.
LADDER = (
    "build_cache",
    "dangling_images",
    "stopped_containers",
    "unused_images",
    "orphaned_layers",
    "container_logs",
    "anonymous_volumes",
)
DEFAULT_STEPS = LADDER[:5]

DEFAULT_KEEP_LABEL = "org.dockerhost-storage.keep"
DEFAULT_TARGET_PERCENT = 10.0  # the audit's warning threshold (capacity_info's *_warn_percent)

# option name -> (kind, default)
AGE_OPTIONS = {
    "build_cache_unused_for": "0s",
    "dangling_images_older_than": "1h",
    "stopped_containers_older_than": "24h",
    "unused_images_older_than": "7d",
    "orphaned_layers_older_than": "1h",
    "anonymous_volumes_older_than": "7d",
}
SIZE_OPTIONS = {
    "build_cache_keep": "0",
    "container_logs_larger_than": "100MiB",
}

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(?:(\d+)\s*([smhdw])\s*)+$")
_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


class ReclaimPolicyError(StorageError):
    """An option reclaim cannot act on; the message names the option and what to give."""


def parse_duration(value, option):
    """``"90m"``, ``"1h30m"``, ``"7d"``, ``"0s"`` -> seconds; ReclaimPolicyError otherwise."""
    text = str(value).strip().lower()
    if text == "0":
        return 0
    if not _DURATION.match(text):
        raise ReclaimPolicyError(
            "%s is %r: give a duration such as 30m, 24h, 7d or 1h30m (units s, m, h, d, w)"
            % (option, value)
        )
    return sum(int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))


def parse_size(value, option):
    """``"512MiB"``, ``"2GB"``, ``"0"``, ``1048576`` -> bytes; ReclaimPolicyError otherwise."""
    match = _SIZE.match(str(value))
    unit = match.group(2).lower() if match else None
    if not match or unit not in _SIZE_UNITS:
        raise ReclaimPolicyError(
            "%s is %r: give a size in bytes or with a unit such as 500MB or 2GiB" % (option, value)
        )
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def _target(params, name):
    value = params.get(name)
    if value is None:
        return DEFAULT_TARGET_PERCENT
    if not 0 <= value <= 100:
        raise ReclaimPolicyError(
            "%s is %s: give a percentage of the filesystem from 0 to 100" % (name, value)
        )
    return float(value)


def read_policy(params):
    """The policy from a module's ``params``: targets, steps in ladder order, ages in seconds,
    sizes in bytes and the keep label. ReclaimPolicyError names the first bad option."""
    steps = params.get("steps")
    steps = list(DEFAULT_STEPS) if steps is None else steps
    unknown = [step for step in steps if step not in LADDER]
    if unknown:
        raise ReclaimPolicyError(
            "steps names %s, which is not a step; the steps are %s"
            % (", ".join(unknown), ", ".join(LADDER))
        )
    policy = {
        "target_free_bytes_percent": _target(params, "target_free_bytes_percent"),
        "target_free_inodes_percent": _target(params, "target_free_inodes_percent"),
        "steps": [step for step in LADDER if step in steps],
        "keep_label": params.get("keep_label") or DEFAULT_KEEP_LABEL,
    }
    for name, default in AGE_OPTIONS.items():
        value = params.get(name)
        policy[name] = parse_duration(default if value is None else value, name)
    for name, default in SIZE_OPTIONS.items():
        value = params.get(name)
        policy[name] = parse_size(default if value is None else value, name)
    return policy


# ---- targets ----------------------------------------------------------------------------


def filesystem_state(role, path, st):
    """The figures reclaim judges of one filesystem, from its statvfs result ``st``: available
    bytes (as df shows them) and free inodes; ``inodes_total`` 0 where the filesystem has no
    inode limit (btrfs)."""
    size = st.f_frsize or st.f_bsize
    return {
        "role": role,
        "path": path,
        "bytes_total": st.f_blocks * size,
        "bytes_free": st.f_bavail * size,
        "inodes_total": st.f_files,
        "inodes_free": st.f_ffree,
    }


def percent(part, whole):
    return round(part * 100.0 / whole, 2) if whole > 0 else None


def shortfall(state, policy):
    """What ``state`` lacks to reach the targets: ``{"bytes": n, "inodes": n}`` (0 where the
    target holds)."""
    need_bytes = policy["target_free_bytes_percent"] * state["bytes_total"] / 100.0
    need_inodes = policy["target_free_inodes_percent"] * state["inodes_total"] / 100.0
    return {
        "bytes": max(0, _ceil(need_bytes) - state["bytes_free"]),
        "inodes": max(0, _ceil(need_inodes) - state["inodes_free"]) if state["inodes_total"] else 0,
    }


def _ceil(value):
    whole = int(value)
    return whole if whole == value else whole + 1


def targets_hold(states, policy):
    """True when every filesystem in ``states`` (role -> state) meets both targets."""
    return all(shortfall(state, policy) == {"bytes": 0, "inodes": 0} for state in states.values())


def summary(state):
    """A filesystem's state as the result shows it, percentages included."""
    return dict(
        state,
        bytes_free_percent=percent(state["bytes_free"], state["bytes_total"]),
        inodes_free_percent=percent(state["inodes_free"], state["inodes_total"]),
    )


def credit(states, candidate):
    """``states`` after removing ``candidate`` as expected (a new dict; unknown figures add 0)."""
    result = {role: dict(state) for role, state in states.items()}
    state = result.get(candidate["filesystem"])
    if state is not None:
        state["bytes_free"] += candidate["bytes"] or 0
        state["inodes_free"] += candidate["inodes"] or 0
    return result


# ---- the plan --------------------------------------------------------------------------------


def plan(states, policy, candidates_of):
    """Walk the ladder on expected figures: for each step in ``policy["steps"]``, take its
    candidates (``candidates_of(step, chosen)``, oldest first, given what earlier steps chose)
    one at a time until the targets hold.

    Returns ``(steps, reached, next_step)``: ``steps`` lists, per step that ran, its
    ``objects`` and the ``expected`` free figures after it; ``next_step`` is the first step of
    the ladder not allowed (None when none is left) when the targets are not reached.
    """
    steps = []
    chosen = []
    current = states
    for step in policy["steps"]:
        if targets_hold(current, policy):
            break
        objects = []
        for candidate in candidates_of(step, chosen):
            if targets_hold(current, policy):
                break
            if not helps(current, candidate, policy):
                continue
            objects.append(candidate)
            chosen.append(candidate)
            current = credit(current, candidate)
        steps.append({"step": step, "objects": objects})
    reached = targets_hold(current, policy)
    if reached:
        steps = trim(steps, states, policy)
    current = states
    for entry in steps:
        for candidate in entry["objects"]:
            current = credit(current, candidate)
        entry["expected"] = {role: summary(state) for role, state in current.items()}
    return steps, reached, None if reached else next_disallowed_step(policy)


# Objects whose expected figures do not depend on what else goes: dropping one from a plan
# changes no other object's figures. (An image's may: the layers it shares with another image
# are credited to the one removed last; a container's removal may be what frees its image.)
_INDEPENDENT_KINDS = ("build_cache", "layer", "log")


def trim(steps, states, policy):
    """The plan of ``steps`` without the objects it does not need: the independent objects
    (with known figures) whose removal the targets do not need, smallest first. The ladder
    takes the cheapest objects first, and the last big one often makes the small ones before
    it unnecessary."""
    chosen = [candidate for entry in steps for candidate in entry["objects"]]
    droppable = [
        c for c in chosen
        if c["kind"] in _INDEPENDENT_KINDS and c["bytes"] is not None and c["inodes"] is not None
    ]  # fmt: skip
    dropped = set()
    for candidate in sorted(droppable, key=lambda c: (c["inodes"], c["bytes"])):
        trial = states
        for other in chosen:
            if other is not candidate and id(other) not in dropped:
                trial = credit(trial, other)
        if targets_hold(trial, policy):
            dropped.add(id(candidate))
    return [
        dict(entry, objects=[c for c in entry["objects"] if id(c) not in dropped])
        for entry in steps
    ]


def helps(states, candidate, policy):
    """Whether removing ``candidate`` may bring its filesystem nearer the targets: it frees
    what that filesystem lacks, or its figures are not known."""
    state = states.get(candidate["filesystem"])
    if state is None:
        return False
    short = shortfall(state, policy)
    for kind in ("bytes", "inodes"):
        if short[kind] and candidate[kind] != 0:
            return True
    return False


def next_disallowed_step(policy):
    """The first step of the ladder the policy leaves out, or None."""
    for step in LADDER:
        if step not in policy["steps"]:
            return step
    return None


def unreachable_message(states, policy, next_step):
    """Why the task fails when the targets are not reached."""
    lacking = []
    for role, state in sorted(states.items()):
        short = shortfall(state, policy)
        if short["bytes"]:
            lacking.append("%s (%s) lacks %d bytes" % (state["path"], role, short["bytes"]))
        if short["inodes"]:
            lacking.append("%s (%s) lacks %d inodes" % (state["path"], role, short["inodes"]))
    if next_step:
        advice = "the next step would have been %s: add it to steps" % next_step
    else:
        advice = "every step has run: nothing left that the policy allows removing"
    return "the targets (%s%% free bytes, %s%% free inodes) are not reached: %s; %s" % (
        _number(policy["target_free_bytes_percent"]),
        _number(policy["target_free_inodes_percent"]),
        "; ".join(lacking) or "none",
        advice,
    )


def _number(value):
    return ("%g" % value) if isinstance(value, float) else str(value)
