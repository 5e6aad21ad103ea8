# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to the dockerhost.storage collection: not a public API.

The fleet report of the audit role, made on the controller by the ``audit_report`` action:
pure functions that turn each host's ``storage_facts`` task result (or its unreachable or
failed result) into one fleet summary, and render it as JSON, JUnit XML (one test case per
host and check) and a self-contained HTML page, and each host's readable report as Markdown.

What a host sends is checked before it is used (``result_problem``): a host whose result does
not have the shape the report reads (a string where a number belongs, a missing key) becomes
an ``error`` entry naming the key, and the other hosts are reported as usual. Every string a
host sends is escaped in the Markdown report (``markdown_text``), so that it cannot start a
heading, a list item, a link or raw HTML.
"""

from __future__ import annotations

import datetime
import functools
import html
import json
import os
import re
from xml.sax.saxutils import quoteattr

import jinja2

# Host statuses from worst to best; a host's status is its worst finding's, else its state.
STATUSES = ("unreachable", "error", "fail", "warn", "no_docker", "ok")
FAIL_ON = ("fail", "warn", "never")
# The per-host files go to this subdirectory of the report directory, so that no host name
# (such as "fleet") can overwrite the fleet report.
HOSTS_DIR = "hosts"


# ---- what a host sends -----------------------------------------------------------------------


class Optional:
    """A key that may be left out; when present, its value must match ``spec``."""

    def __init__(self, spec):
        self.spec = spec


class Nullable:
    """``spec`` or null."""

    def __init__(self, spec):
        self.spec = spec


class MapOf:
    """A dictionary whose every value matches ``spec``."""

    def __init__(self, spec):
        self.spec = spec


class OneOf:
    """One of these strings."""

    def __init__(self, *values):
        self.values = values


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Scalar specs: (test, what it must be).
_SCALARS = {
    "text": (lambda v: isinstance(v, str), "a string"),
    "text?": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "integer": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "integer?": (
        lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
        "an integer or null",
    ),
    "number?": (lambda v: v is None or _is_number(v), "a number or null"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "bool?": (lambda v: v is None or isinstance(v, bool), "true, false or null"),
    "any": (lambda v: True, "anything"),
}

_CHECK = {
    "check": "text",
    "cis": "text?",
    "status": OneOf("pass", "fail", "warn", "skipped"),
    "message": "text",
    "evidence": "any",
}
_FINDING = {
    "check": "text",
    "cis": "text?",
    "status": OneOf("fail", "warn"),
    "message": "text",
}
_FILESYSTEM = {
    "role": "text",
    "path": "text",
    "mount_point": "text?",
    "fstype": "text?",
    "inodes": {"limited": "bool", "used": "integer", "total": "integer", "used_percent": "number?"},
    "bytes": {"used": "integer", "total": "integer", "used_percent": "number?"},
}
# What the fleet report (JSON, JUnit, HTML) reads of a host's storage_facts result.
FLEET_RESULT = {
    "checks": [_CHECK],
    "findings": [_FINDING],
    "docker": {"state": OneOf("running", "stopped", "absent"), "reason": "text?"},
    "engine": {"version": "text?", "running_driver": "text?"},
    "daemon_json": {"storage_driver": "text?"},
    "data_root": "text?",
    "capacity": Optional(Nullable({"filesystems": Optional(Nullable([_FILESYSTEM]))})),
}
_KERNEL_FILESYSTEM = Optional(
    {
        "available": "bool?",
        "how": "text?",
        "blocked_by": Optional(["text"]),
        "blacklisted_by": Optional(["text"]),
    }
)
# What the host's readable report reads besides.
MARKDOWN_RESULT = {
    "docker": {"state": "text", "reason": "text?"},
    "findings": [{"check": "text", "cis": Optional("text?"), "status": "text", "message": "text"}],
    "support": {
        "path": "text",
        "path_source": "text?",
        "checked_path": "text",
        "backing_filesystem": {
            "type": "text?",
            "magic": "text?",
            "source": Optional("text?"),
            "mount_point": Optional("text?"),
            "mount_options": Optional("text?"),
            "super_options": Optional("text?"),
            "d_type": Optional("bool?"),
            "project_quota": Optional("bool?"),
        },
        "engine": {
            "version": "text?",
            "version_source": "text?",
            "api_version": Optional("text?"),
            "running_driver": Optional("text?"),
            "configured_driver": "text?",
            "problem": Optional("text?"),
        },
        "kernel": {
            "release": "text?",
            "config_source": Optional("text?"),
            "overlay": _KERNEL_FILESYSTEM,
            "aufs": _KERNEL_FILESYSTEM,
        },
        "drivers": MapOf(
            {
                "supported": "bool?",
                "reasons": ["text"],
                "warnings": ["text"],
                "removed": Optional("bool?"),
                "deprecated": Optional("bool?"),
            }
        ),
        "overlay_probe": {"attempted": "bool", "ok": Optional("bool?"), "error": Optional("text?")},
        "would_pick": {
            "driver": "text?",
            "image_store": Optional("text?"),
            "reason": "text?",
            "warnings": Optional(Nullable(["text"])),
        },
        "recommended": Optional("text?"),
    },
    "disk_users": Optional(
        {
            "checked": "bool",
            "problem": "text?",
            "containers": Optional(
                [
                    {
                        "name": "text",
                        "image": "text?",
                        "state": "text?",
                        "writable_bytes": "integer?",
                        "log_bytes": "integer?",
                    }
                ]
            ),
            "images": Optional(
                [
                    {
                        "image": "text",
                        "unique_bytes": "integer?",
                        "size_bytes": "integer?",
                        "containers": "integer?",
                    }
                ]
            ),
        }
    ),
    "reclaim": Optional(
        {
            "checked": "bool",
            "problem": "text?",
            "targets": Optional(
                {"free_bytes_percent": "number?", "free_inodes_percent": "number?"}
            ),
            "reached": Optional("bool"),
            "removed_objects": Optional("integer"),
            "freed": Optional(MapOf({"bytes": "integer", "inodes": "integer"})),
            "steps": Optional(
                [{"step": "text", "objects": "integer", "bytes": "integer", "inodes": "integer"}]
            ),
            "next_step": Optional("text?"),
        }
    ),
}


def _found(value):
    """What a value is, for a message: ``the string '12%'``, ``a list``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "%s" % str(value).lower()
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return "the string %s" % json.dumps(shown)
    if _is_number(value):
        return "the number %s" % value
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "a %s" % type(value).__name__


def _problem(value, spec, key):
    """``(key, what it must be, what was found)`` of the first mismatch, or None."""
    if isinstance(spec, Nullable):
        return None if value is None else _problem(value, spec.spec, key)
    if isinstance(spec, str):
        test, expected = _SCALARS[spec]
        return None if test(value) else (key, expected, _found(value))
    if isinstance(spec, OneOf):
        if isinstance(value, str) and value in spec.values:
            return None
        return (key, "one of %s" % ", ".join(spec.values), _found(value))
    if isinstance(spec, list):
        if not isinstance(value, list):
            return (key, "a list", _found(value))
        for index, item in enumerate(value):
            found = _problem(item, spec[0], "%s[%d]" % (key, index))
            if found:
                return found
        return None
    if isinstance(spec, MapOf):
        if not isinstance(value, dict):
            return (key, "an object", _found(value))
        for name in sorted(value, key=str):
            found = _problem(value[name], spec.spec, "%s.%s" % (key, name))
            if found:
                return found
        return None
    if not isinstance(value, dict):
        return (key, "an object", _found(value))
    for name, item_spec in spec.items():
        where = "%s.%s" % (key, name) if key else name
        if name not in value:
            if isinstance(item_spec, Optional):
                continue
            return (where, "present", "nothing")
        if isinstance(item_spec, Optional):
            item_spec = item_spec.spec
        found = _problem(value[name], item_spec, where)
        if found:
            return found
    return None


def result_problem(host, result, spec=None):
    """Why ``result`` (a host's storage_facts result) cannot be reported, as a sentence naming
    the host and the key; None when it has the shape ``spec`` (FLEET_RESULT by default)
    describes."""
    found = _problem(result, FLEET_RESULT if spec is None else spec, "")
    if found is None:
        return None
    key, expected, what = found
    if not key:
        return "the storage_facts result of %s must be an object, found %s" % (host, what)
    return (
        "the storage_facts result of %s cannot be reported: key %s must be %s, found %s; run "
        "the same version of dockerhost.storage on the controller and the hosts"
        % (host, key, expected, what)
    )


# ---- Markdown --------------------------------------------------------------------------------

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_NAMES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Punctuation that means something inline in Markdown (CommonMark and GitHub's tables and
# strikethrough); "_" only where it could open or close emphasis (at a word boundary).
_MARKDOWN_SPECIAL = re.compile(r"[\\`*\[\]<>#|&~!]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def markdown_text(value):
    """``value`` as text that reads as itself inside a line of Markdown: control characters
    (a newline, which could start a heading or a list item) written as ``\\n``, ``\\x1b``
    and so on; backslashes, backticks, ``*``, brackets, ``<``, ``>``, ``#``, ``|``, ``&``,
    ``~``, ``!`` and ``_`` at a word boundary escaped with a backslash."""
    text = value if isinstance(value, str) else str(value)

    def control(match):
        char = match.group(0)
        if char in _CONTROL_NAMES:
            return _CONTROL_NAMES[char]
        code = ord(char)
        return "\\x%02x" % code if code < 0x100 else "\\u%04x" % code

    text = _MARKDOWN_SPECIAL.sub(lambda m: "\\" + m.group(0), text)
    return _CONTROL.sub(control, text)


def _usage(facts):
    """The data-root's inode and byte usage (percent used and figures), or None."""
    for entry in (facts.get("capacity") or {}).get("filesystems") or []:
        if entry["role"] == "data_root":
            inodes = entry["inodes"]
            return {
                "path": entry["path"],
                "mount_point": entry["mount_point"],
                "fstype": entry["fstype"],
                "inodes_used": inodes["used"],
                "inodes_total": inodes["total"],
                "inodes_used_percent": inodes["used_percent"] if inodes["limited"] else None,
                "bytes_used": entry["bytes"]["used"],
                "bytes_total": entry["bytes"]["total"],
                "bytes_used_percent": entry["bytes"]["used_percent"],
            }
    return None


def _message(result, fallback):
    """A failed or unreachable result's ``msg`` as text, or ``fallback``."""
    message = result.get("msg")
    if not message:
        return fallback
    return message if isinstance(message, str) else json.dumps(message, sort_keys=True)


def host_file_paths(dest, host):
    """``{".json": path, ".md": path}`` of a host's files under ``<dest>/hosts/``; ValueError
    when the host's name cannot name a file there."""
    if not host or "/" in host or "\0" in host or host in (".", ".."):
        raise ValueError(
            "host %s cannot name a file under %s: rename it in the inventory, or set "
            "host_files to false" % (json.dumps(host), os.path.join(dest, HOSTS_DIR))
        )
    return {suffix: os.path.join(dest, HOSTS_DIR, host + suffix) for suffix in (".json", ".md")}


def host_entry(host, result):
    """One host's line of the fleet report from its registered ``storage_facts`` result."""
    entry = {
        "host": host,
        "status": None,
        "reason": None,
        "docker": None,
        "engine_version": None,
        "driver": None,
        "data_root": None,
        "usage": None,
        "checks": [],
        "findings": [],
    }
    result = {} if result is None else result
    if not isinstance(result, dict):
        entry.update(status="error", reason=result_problem(host, result))
        return entry
    if result.get("unreachable"):
        entry.update(status="unreachable", reason=_message(result, "host unreachable"))
        return entry
    if result.get("failed") or "checks" not in result:
        reason = _message(result, "the storage_facts task did not run on this host")
        entry.update(status="error", reason=reason)
        return entry
    problem = result_problem(host, result)
    if problem:
        entry.update(status="error", reason=problem)
        return entry
    checks = result["checks"]
    found = [dict(finding, host=host) for finding in result["findings"]]
    state = result["docker"]["state"]
    if any(f["status"] == "fail" for f in found):
        status = "fail"
    elif found:
        status = "warn"
    else:
        status = "no_docker" if state == "absent" else "ok"
    entry.update(
        status=status,
        reason=result["docker"]["reason"],
        docker=state,
        engine_version=result["engine"]["version"],
        driver=result["engine"]["running_driver"] or result["daemon_json"]["storage_driver"],
        data_root=result["data_root"],
        usage=_usage(result),
        checks=checks,
        findings=found,
    )
    return entry


def _time(text):
    """``2026-12-02T08:45:36Z`` as seconds since the epoch, or None."""
    try:
        return (
            datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
            .replace(tzinfo=datetime.timezone.utc)
            .timestamp()
        )
    except (TypeError, ValueError):
        return None


def _days_until_full(used_now, used_before, total, days):
    """``{per_day, days_until_full}`` from two figures ``days`` apart; ``days_until_full`` is
    None when usage did not grow."""
    per_day = (used_now - used_before) / days
    left = (total - used_now) / per_day if per_day > 0 else None
    return {
        "per_day": round(per_day, 1),
        "days_until_full": None if left is None else round(left, 1),
    }


def trend(usage, previous_usage, days):
    """How fast a host's data-root filesystem fills, from this run's ``usage`` and the one
    ``days`` before (``previous_usage``, from the previous fleet.json); None when either run
    has no figures or they are not of the same filesystem."""
    if not usage or not isinstance(previous_usage, dict) or days <= 0:
        return None
    try:
        if (previous_usage["path"], previous_usage["mount_point"]) != (
            usage["path"],
            usage["mount_point"],
        ):
            return None
        result = {"days": round(days, 3)}
        for kind in ("bytes", "inodes"):
            before = previous_usage["%s_used" % kind]
            if not _is_number(before) or not usage["%s_total" % kind]:
                result[kind] = None
                continue
            result[kind] = _days_until_full(
                usage["%s_used" % kind], before, usage["%s_total" % kind], days
            )
    except (KeyError, TypeError):
        return None
    return result


# Runs closer together than this give no pace: a few minutes of log growth would read as days
# until full. A run that close keeps the earlier baseline for the next one.
MIN_TREND_HOURS = 1.0


def _baseline_of(report):
    """``{generated, usage: {host: usage}}`` of a fleet report (a parsed fleet.json), or None."""
    if not isinstance(report, dict) or _time(report.get("generated")) is None:
        return None
    hosts = report.get("hosts") if isinstance(report.get("hosts"), list) else []
    usage = {h.get("host"): h.get("usage") for h in hosts if isinstance(h, dict)}
    return {"generated": report["generated"], "usage": usage}


def add_trends(fleet, previous):
    """Each host's ``trend`` against an earlier run: how many days until its data-root
    filesystem fills at the pace between the runs. The earlier run is the newest of the
    ``previous`` fleet report (its parsed fleet.json, or None) and the baseline that report
    kept, at least ``MIN_TREND_HOURS`` before this one. The fleet keeps, as ``baseline``, the
    run the next report may compare with when it comes too soon after this one."""
    now = _time(fleet["generated"])
    candidates = []
    if isinstance(previous, dict):
        kept = previous.get("baseline")
        for candidate in (_baseline_of(previous), kept if isinstance(kept, dict) else None):
            then = _time((candidate or {}).get("generated"))
            usage = (candidate or {}).get("usage")
            if now is not None and then is not None and then < now and isinstance(usage, dict):
                candidates.append((then, candidate))
    candidates.sort(key=lambda pair: -pair[0])
    chosen = next((c for then, c in candidates if now - then >= MIN_TREND_HOURS * 3600), None)
    fleet["previous"] = chosen["generated"] if chosen else None
    fleet["baseline"] = chosen or (candidates[-1][1] if candidates else None)
    for host in fleet["hosts"]:
        host["trend"] = None
        if chosen and host["host"] in chosen["usage"]:
            days = (now - _time(chosen["generated"])) / 86400.0
            host["trend"] = trend(host["usage"], chosen["usage"][host["host"]], days)
    return fleet


def build_fleet(results, generated=None, previous=None):
    """The fleet report from ``[{host, result}, ...]``; hosts sorted by name. ``previous`` is
    the last run's fleet.json, parsed, for each host's ``trend``."""
    hosts = [host_entry(item["host"], item.get("result")) for item in results]
    hosts.sort(key=lambda h: h["host"])
    summary = dict.fromkeys(STATUSES, 0)
    for host in hosts:
        summary[host["status"]] += 1
    summary["hosts"] = len(hosts)
    findings = [f for h in hosts for f in h["findings"]]
    summary["findings_fail"] = sum(1 for f in findings if f["status"] == "fail")
    summary["findings_warn"] = sum(1 for f in findings if f["status"] == "warn")
    fleet = {
        "generated": generated,
        "summary": summary,
        "hosts": hosts,
        "findings": findings,
        "by_check": by_check(hosts),
    }
    return add_trends(fleet, previous)


CHECK_STATUSES = ("fail", "warn", "pass", "skipped")


def by_check(hosts):
    """The fleet by check: for each check any host ran, ``{check, cis, counts, hosts}`` with
    ``counts`` of the hosts per status (``fail``, ``warn``, ``pass``, ``skipped``) and
    ``hosts`` the names per status. Hosts that did not report (unreachable, error) are in no
    count. Checks failing on most hosts come first, then warning on most; then the audit's
    order."""
    checks = {}
    for host in hosts:
        for check in host["checks"]:
            entry = checks.setdefault(
                check["check"],
                {
                    "check": check["check"],
                    "cis": check["cis"],
                    "counts": dict.fromkeys(CHECK_STATUSES, 0),
                    "hosts": {status: [] for status in CHECK_STATUSES},
                },
            )
            status = check["status"] if check["status"] in CHECK_STATUSES else "fail"
            entry["counts"][status] += 1
            entry["hosts"][status].append(host["host"])
    order = list(checks)
    return sorted(
        checks.values(),
        key=lambda e: (-e["counts"]["fail"], -e["counts"]["warn"], order.index(e["check"])),
    )


def verdict(fleet, fail_on):
    """``(failed, reason)``: whether the play should fail under ``fail_on``. Unreachable hosts
    and hosts the audit could not run on count as failures: an audit that did not run passed
    nothing."""
    if fail_on not in FAIL_ON:
        raise ValueError("fail_on must be one of %s, got %r" % (", ".join(FAIL_ON), fail_on))
    summary = fleet["summary"]
    bad = summary["fail"] + summary["unreachable"] + summary["error"]
    if fail_on == "warn":
        bad += summary["warn"]
    if fail_on == "never" or not bad:
        return False, None
    names = [
        h["host"]
        for h in fleet["hosts"]
        if h["status"] in ("fail", "unreachable", "error")
        or (fail_on == "warn" and h["status"] == "warn")
    ]
    return True, "audit_fail_on is %s and %d host(s) did not pass: %s" % (
        fail_on,
        len(names),
        ", ".join(names),
    )


def summary_lines(fleet):
    """A short account of the fleet for the end of the play, one line per host."""
    s = fleet["summary"]
    lines = [
        "%d host(s): %d ok, %d warn, %d fail, %d without Docker, %d unreachable, %d error; "
        "%d failing and %d warning finding(s)"
        % (
            s["hosts"],
            s["ok"],
            s["warn"],
            s["fail"],
            s["no_docker"],
            s["unreachable"],
            s["error"],
            s["findings_fail"],
            s["findings_warn"],
        )
    ]
    for host in fleet["hosts"]:
        if host["findings"]:
            detail = ", ".join("%s (%s)" % (f["check"], f["status"]) for f in host["findings"])
        else:
            detail = host["reason"] or "no findings"
        full_in, days = _fills_in(host.get("trend"))
        if days != "":
            detail += "; data-root full in %s at the pace since the last run" % full_in
        lines.append("%s: %s: %s" % (host["host"], host["status"], detail))
    return lines


def render_json(fleet):
    return json.dumps(fleet, indent=2, sort_keys=True) + "\n"


def _ran(result):
    """Whether the storage_facts task ran on the host and returned its result."""
    return (
        isinstance(result, dict)
        and "checks" in result
        and not result.get("failed")
        and not result.get("unreachable")
    )


def render_host_json(host, result):
    """A host's raw facts as ``hosts/<host>.json`` holds them (as the host sent them, also
    when the report cannot use them), or None when the facts task did not run there."""
    if not _ran(result):
        return None
    ansible_facts = result.get("ansible_facts")
    facts = ansible_facts.get("docker_storage") if isinstance(ansible_facts, dict) else None
    if not isinstance(facts, dict):
        return None
    document = {
        "inventory_hostname": host,
        "docker_storage_support": facts.get("support"),
        "docker_storage": facts,
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _case_name(check):
    return "%s (CIS %s)" % (check["check"], check["cis"]) if check["cis"] else check["check"]


def render_junit(fleet):
    """JUnit XML: one test suite per host, one test case per host and check. Failing checks
    are failures, warnings pass with the warning in system-out, skipped checks are skipped;
    an unreachable host or one the audit could not run on is one test case with an error."""
    suites = []
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for host in fleet["hosts"]:
        cases = []
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        classname = quoteattr("dockerhost.storage.audit.%s" % host["host"])
        if host["status"] in ("unreachable", "error"):
            counts["tests"] += 1
            counts["errors"] += 1
            cases.append(
                "    <testcase classname=%s name=%s>\n      <error type=%s message=%s/>\n"
                "    </testcase>"
                % (
                    classname,
                    quoteattr("reachable" if host["status"] == "unreachable" else "audit"),
                    quoteattr(host["status"]),
                    quoteattr(host["reason"] or ""),
                )
            )
        for check in host["checks"]:
            counts["tests"] += 1
            body = ""
            if check["status"] == "fail":
                counts["failures"] += 1
                body = "\n      <failure type=%s message=%s>%s</failure>\n    " % (
                    quoteattr(check["check"]),
                    quoteattr(check["message"]),
                    html.escape(json.dumps(check["evidence"], sort_keys=True), quote=False),
                )
            elif check["status"] == "warn":
                body = "\n      <system-out>%s</system-out>\n    " % html.escape(
                    "warning: " + check["message"], quote=False
                )
            elif check["status"] == "skipped":
                counts["skipped"] += 1
                body = "\n      <skipped message=%s/>\n    " % quoteattr(check["message"])
            cases.append(
                "    <testcase classname=%s name=%s>%s</testcase>"
                % (classname, quoteattr(_case_name(check)), body)
            )
        for key in totals:
            totals[key] += counts[key]
        suites.append(
            '  <testsuite name=%s tests="%d" failures="%d" errors="%d" skipped="%d">\n%s\n'
            "  </testsuite>"
            % (
                quoteattr(host["host"]),
                counts["tests"],
                counts["failures"],
                counts["errors"],
                counts["skipped"],
                "\n".join(cases),
            )
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<testsuites name="dockerhost.storage audit" tests="%d" failures="%d" errors="%d" '
        'skipped="%d">\n%s\n</testsuites>\n'
        % (
            totals["tests"],
            totals["failures"],
            totals["errors"],
            totals["skipped"],
            "\n".join(suites),
        )
    )


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}
.cards{display:flex;gap:.8em;flex-wrap:wrap}
.card{border:1px solid #ccc;border-radius:6px;padding:.5em 1em;min-width:6em}
.card b{display:block;font-size:1.6em}
.card{font:inherit;text-align:left;background:#fff;cursor:pointer}
.card.active{outline:2px solid #1565c0}
.hint{color:#555;font-size:.9em}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top;
  overflow-wrap:normal;word-break:normal;hyphens:none}
td.n{text-align:right}
th{background:#f3f3f3;cursor:pointer;user-select:none;white-space:nowrap}
tr.hidden{display:none}
@media (max-width:600px){body{margin:.6em;font-size:14px}th,td{padding:.2em .3em}
  .card{min-width:4.5em;padding:.3em .6em}.card b{font-size:1.2em}}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
.s-ok{background:#e6f4ea}.s-warn{background:#fff4d6}.s-fail{background:#fde2e1}
.s-unreachable,.s-error{background:#f0d0f0}.s-no_docker{background:#eef}
svg text{font-size:12px}
ul.f{margin:0;padding-left:1.2em}
"""

_JS = """
(function(){
  function key(row,i){var c=row.cells[i];var v=c.getAttribute('data-sort');
    if(v===null){v=c.textContent.trim();}
    var n=parseFloat(v);return isNaN(n)||v===''?v.toLowerCase():n;}
  function sortable(table){
    var heads=table.tHead.rows[0].cells;
    for(var i=0;i<heads.length;i++){(function(i){heads[i].addEventListener('click',function(){
      var asc=!heads[i].classList.contains('sorted-asc');
      for(var j=0;j<heads.length;j++){heads[j].classList.remove('sorted-asc','sorted-desc');}
      heads[i].classList.add(asc?'sorted-asc':'sorted-desc');
      var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){var x=key(a,i),y=key(b,i);
        if(typeof x!==typeof y){x=String(x);y=String(y);}
        return (x<y?-1:x>y?1:0)*(asc?1:-1);});
      rows.forEach(function(r){body.appendChild(r);});});})(i);}
  }
  var tables=document.querySelectorAll('table.sortable');
  for(var t=0;t<tables.length;t++){sortable(tables[t]);}
  var statuses=['ok','warn','fail','no_docker','unreachable','error'];
  var cards=document.querySelectorAll('#summary .card');
  function show(status){
    var rows=document.getElementById('hosts').tBodies[0].rows;
    for(var r=0;r<rows.length;r++){
      var keep=!status||rows[r].classList.contains('s-'+status);
      rows[r].classList.toggle('hidden',!keep);}
    for(var c=0;c<cards.length;c++){
      cards[c].classList.toggle('active',cards[c].getAttribute('data-status')===status);}
    document.getElementById('filter').textContent=status?'(status '+status+')':'';
  }
  for(var c=0;c<cards.length;c++){(function(card){card.addEventListener('click',function(){
    var status=card.getAttribute('data-status');
    show(statuses.indexOf(status)>=0?status:null);});})(cards[c]);}
})();
"""


def _bar_chart(chart_id, title, hosts, key):
    """An inline SVG bar chart of ``usage[key]`` (percent used) per host."""
    bar_height, gap, label_width, width = 18, 6, 160, 420
    rows = []
    for index, host in enumerate(hosts):
        value = (host["usage"] or {}).get(key)
        y = index * (bar_height + gap)
        length = 0 if value is None else max(1, int(round(value / 100.0 * width)))
        colour = "#c62828" if (value or 0) >= 95 else "#f9a825" if (value or 0) >= 90 else "#2e7d32"
        text = "n/a" if value is None else "%s%%" % value
        rows.append(
            '<text x="0" y="%d">%s</text>'
            '<rect class="bar" data-host="%s" data-value="%s" x="%d" y="%d" width="%d" '
            'height="%d" fill="%s"><title>%s: %s</title></rect>'
            '<text x="%d" y="%d">%s</text>'
            % (
                y + 13,
                html.escape(host["host"]),
                html.escape(host["host"]),
                "" if value is None else value,
                label_width,
                y,
                length,
                bar_height,
                colour,
                html.escape(host["host"]),
                text,
                label_width + length + 4,
                y + 13,
                text,
            )
        )
    height = max(1, len(hosts)) * (bar_height + gap)
    return (
        '<figure><figcaption>%s</figcaption><svg id="%s" xmlns="http://www.w3.org/2000/svg" '
        'width="%d" height="%d" role="img" aria-label="%s">%s</svg></figure>'
        % (
            html.escape(title),
            chart_id,
            label_width + width + 60,
            height,
            html.escape(title),
            "".join(rows),
        )
    )


def _fills_in(host_trend):
    """``(text, sort key)`` of the days until the data-root filesystem fills, from the trend:
    the sooner of bytes and inodes; "-" without a previous run, "not filling" when neither
    grew."""
    if not host_trend:
        return "-", ""
    soonest = [
        (host_trend[kind]["days_until_full"], kind)
        for kind in ("bytes", "inodes")
        if host_trend.get(kind) and host_trend[kind]["days_until_full"] is not None
    ]
    if not soonest:
        return "not filling", ""
    days, kind = min(soonest)
    return "%s d (%s)" % (days, kind), days


def _by_check_table(checks):
    """The view by check: how many hosts fail, warn, pass and skip each one, and which."""
    rows = []
    for entry in checks:
        counts, hosts = entry["counts"], entry["hosts"]
        named = "".join(
            '<li class="s-%s">%s: %s</li>' % (status, status, html.escape(", ".join(hosts[status])))
            for status in ("fail", "warn")
            if hosts[status]
        )
        rows.append(
            '<tr data-check="%s"><td>%s</td><td>%s</td>%s<td>%s</td></tr>'
            % (
                html.escape(entry["check"]),
                html.escape(entry["check"]),
                html.escape(entry["cis"] or ""),
                "".join(
                    '<td class="n" data-count="%s">%d</td>' % (status, counts[status])
                    for status in CHECK_STATUSES
                ),
                ('<ul class="f">%s</ul>' % named) if named else "",
            )
        )
    return (
        '<div class="scroll"><table id="by-check" class="sortable"><thead><tr><th>check</th>'
        "<th>CIS</th><th>fail</th><th>warn</th><th>pass</th><th>skipped</th>"
        "<th>failing or warning hosts</th></tr></thead><tbody>%s</tbody></table></div>"
        % "".join(rows)
    )


def render_html(fleet):
    """A self-contained HTML page: inline CSS, JavaScript and SVG, no external assets."""
    s = fleet["summary"]
    cards = "".join(
        '<button type="button" class="card" data-status="%s"><b>%d</b>%s</button>'
        % (key, s[key], label)
        for key, label in (
            ("hosts", "hosts"),
            ("ok", "ok"),
            ("warn", "warn"),
            ("fail", "fail"),
            ("no_docker", "without Docker"),
            ("unreachable", "unreachable"),
            ("error", "error"),
            ("findings_fail", "failing findings"),
            ("findings_warn", "warnings"),
        )
    )
    rows = []
    order = {status: index for index, status in enumerate(STATUSES)}
    for host in fleet["hosts"]:
        usage = host["usage"] or {}
        findings = "".join(
            "<li>%s%s: %s</li>"
            % (
                html.escape(f["check"]),
                " (CIS %s)" % html.escape(f["cis"]) if f["cis"] else "",
                html.escape(f["message"]),
            )
            for f in host["findings"]
        )
        inodes = usage.get("inodes_used_percent")
        byte_pct = usage.get("bytes_used_percent")
        full_in, full_sort = _fills_in(host.get("trend"))
        rows.append(
            '<tr class="s-%s" data-host="%s">'
            "<td>%s</td>"
            '<td data-sort="%d">%s</td>'
            "<td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
            '<td data-sort="%s">%s</td><td data-sort="%s">%s</td>'
            '<td data-sort="%s">%s</td>'
            '<td data-sort="%d">%s</td>'
            "</tr>"
            % (
                host["status"],
                html.escape(host["host"]),
                html.escape(host["host"]),
                order[host["status"]],
                html.escape(host["status"]),
                html.escape(host["docker"] or "-"),
                html.escape(host["engine_version"] or "-"),
                html.escape(host["driver"] or "-"),
                html.escape(host["data_root"] or "-"),
                "" if inodes is None else inodes,
                "-" if inodes is None else "%s%%" % inodes,
                "" if byte_pct is None else byte_pct,
                "-" if byte_pct is None else "%s%%" % byte_pct,
                full_sort,
                full_in,
                len(host["findings"]),
                ('<ul class="f">%s</ul>' % findings)
                if findings
                else html.escape(host["reason"] or "none"),
            )
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Docker storage audit</title><style>%s</style></head><body>"
        "<h1>Docker storage audit</h1><p>Generated %s</p>"
        '<h2>Fleet</h2><div class="cards" id="summary">%s</div>'
        '<p class="hint">Select a status to show only those hosts; "hosts" shows them all.</p>'
        "<h2>Checks</h2>%s"
        '<h2>Hosts <span id="filter"></span></h2>'
        '<div class="scroll"><table id="hosts" class="sortable"><thead><tr><th>host</th>'
        "<th>status</th><th>Docker</th><th>engine</th><th>driver</th><th>data-root</th>"
        "<th>inodes used</th><th>bytes used</th><th>full in</th><th>findings</th></tr></thead>"
        "<tbody>%s</tbody></table></div>"
        "<h2>Usage of the data-root filesystem</h2>%s%s"
        "<script>%s</script></body></html>\n"
        % (
            _CSS,
            html.escape(fleet["generated"] or "-"),
            cards,
            _by_check_table(fleet["by_check"]),
            "".join(rows),
            _bar_chart(
                "chart-inodes", "inodes used (%) per host", fleet["hosts"], "inodes_used_percent"
            ),
            _bar_chart(
                "chart-bytes", "bytes used (%) per host", fleet["hosts"], "bytes_used_percent"
            ),
            _JS,
        )
    )


_PATH_SOURCES = {
    "option": "the path option",
    "engine": "the running engine",
    "daemon.json": "daemon.json",
    "default": "the default",
}
_VERSION_SOURCES = {
    "option": "the engine_version option",
    "api": "the Engine API",
    "binary": "dockerd --version",
}
_DRIVER_ORDER = (
    "overlay2",
    "fuse-overlayfs",
    "btrfs",
    "zfs",
    "vfs",
    "aufs",
    "overlay",
    "devicemapper",
)


_SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def size_text(value):
    """Bytes as ``docker system df`` shows them (powers of 1000, three significant digits:
    ``1.23GB``, ``512kB``, ``0B``); ``?`` for null."""
    if value is None:
        return "?"
    size = float(value)
    unit = 0
    while size >= 999.5 and unit < len(_SIZE_UNITS) - 1:
        size /= 1000
        unit += 1
    if unit == 0:
        return "%dB" % value
    return "%s%s" % (("%.3g" % size), _SIZE_UNITS[unit])


# The readable report's layout; the values are the host's, each through ``markdown_text``.
HOST_TEMPLATE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "templates", "host_report.md.j2"
)


@functools.lru_cache(maxsize=None)
def _host_template():
    environment = jinja2.Environment(
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["md"] = markdown_text
    environment.filters["size"] = size_text
    with open(HOST_TEMPLATE, encoding="utf-8") as handle:
        return environment.from_string(handle.read())


def render_host_markdown(host, result, generated=None, facts=None):
    """A host's readable report (``hosts/<host>.md``) from its registered ``storage_facts``
    result, or None when the facts task did not run there. Every string from the host is
    escaped (``markdown_text``); a result the fleet report or this one cannot read gives a
    short report naming the key (``result_problem``).

    ``facts`` are the host's ``ansible_facts`` when they were gathered (the host's name,
    distribution and the time they were taken are shown); otherwise ``generated`` is the time
    shown. The layout is the template ``HOST_TEMPLATE``.
    """
    if not _ran(result):
        return None
    values = {
        "host": host,
        "generated": generated,
        "facts": facts if isinstance(facts, dict) else {},
        # The fleet report's keys too: a host the fleet report names as an error gets no
        # report that looks complete.
        "problem": result_problem(host, result) or result_problem(host, result, MARKDOWN_RESULT),
        "path_sources": _PATH_SOURCES,
        "version_sources": _VERSION_SOURCES,
    }
    if not values["problem"]:
        verdicts = result["support"]["drivers"]
        drivers = [name for name in _DRIVER_ORDER if name in verdicts] + sorted(
            name for name in verdicts if name not in _DRIVER_ORDER
        )
        # Warnings every driver carries (such as the engine version judged for) are shown
        # once, as notes.
        common = list(verdicts[drivers[0]]["warnings"]) if drivers else []
        for name in drivers:
            common = [warning for warning in common if warning in verdicts[name]["warnings"]]
        values.update(
            result=result,
            support=result["support"],
            verdicts=verdicts,
            drivers=drivers,
            common=common,
        )
    return _host_template().render(values)
