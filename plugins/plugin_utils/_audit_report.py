# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to the dockerhost.storage collection: not a public API.

What the ``dockerhost.storage.audit_report`` action does on the controller: read each host's
``storage_facts`` result from the play's hostvars, build the fleet report (``_fleet_report``)
and write its files and each host's files, or, in check mode, say which it would change.
"""

from __future__ import annotations

import json
import os

from ansible_collections.dockerhost.storage.plugins.module_utils._atomic_file import (
    write_text_atomically,
)
from ansible_collections.dockerhost.storage.plugins.plugin_utils import _fleet_report

ARGUMENT_SPEC = dict(
    results=dict(type="list", elements="dict"),
    hosts=dict(type="list", elements="str"),
    result_var=dict(type="str", default="audit_facts_result"),
    dest=dict(type="path", required=True),
    name=dict(type="str", default="fleet"),
    fail_on=dict(type="str", choices=list(_fleet_report.FAIL_ON), default="fail"),
    generated=dict(type="str"),
    host_files=dict(type="bool", default=False),
)
MUTUALLY_EXCLUSIVE = [("results", "hosts")]
REQUIRED_ONE_OF = [("results", "hosts")]

# What a host's readable report shows of its gathered facts.
FACT_KEYS = ("fqdn", "distribution", "distribution_version", "date_time")


class ReportError(Exception):
    """The report cannot be made or written; the message says why."""


def plain(value, what):
    """``value`` as plain JSON data (dict, list, str, int, float, bool, None), as a module
    would have received it; ReportError naming ``what`` when it is not JSON data."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise ReportError("%s cannot be reported: %s" % (what, exc)) from None


def _is_json(value):
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _host_variable(hostvars, variables, host, name, raw):
    """``variables[name]``, or None when unset. Where ``variables`` are raw (as
    ``HostVars.raw_get`` gives them) and the value is not JSON data, the same variable
    templated: a failed or unreachable task's result holds ansible's own error objects, which
    only templating turns into data."""
    if name not in variables:
        return None
    value = variables[name]
    if raw and not _is_json(value):
        value = hostvars[host][name]
    return value


def results_from_hostvars(hosts, hostvars, result_var):
    """``[{host, result, facts}, ...]``: each host's ``result_var`` (its registered
    ``storage_facts`` result; None where it is not set, which the report names as not
    audited) and the facts its readable report shows, when the play gathered them."""
    items = []
    for host in hosts:
        result = facts = None
        if host in hostvars:
            # As they are, not templated: hostvars[host] templates each value it gives (a
            # host's whole storage_facts result, about 35 ms a host), and a report must not
            # evaluate what a host sent anyway.
            raw_get = getattr(hostvars, "raw_get", None)
            variables = raw_get(host) if raw_get else hostvars[host]
            result = _host_variable(hostvars, variables, host, result_var, bool(raw_get))
            gathered = _host_variable(hostvars, variables, host, "ansible_facts", bool(raw_get))
            if isinstance(gathered, dict):
                facts = {key: gathered[key] for key in FACT_KEYS if key in gathered}
        items.append(
            {
                "host": host,
                "result": plain(result, "the %s of %s" % (result_var, host)),
                "facts": plain(facts, "the facts of %s" % host),
            }
        )
    return items


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def _previous_fleet(path):
    """The last run's fleet report (its fleet.json, parsed), for the trend; None when there is
    none or it cannot be read (the trend is then left out, nothing fails)."""
    text = _read(path)
    try:
        previous = json.loads(text) if text else None
    except ValueError:
        return None
    return previous if isinstance(previous, dict) else None


def _files(params, items, texts):
    """``(files, host_files, [(path, text), ...])``: the fleet report's paths by kind, each
    host's paths, and every file with the text it gets, in the order they are written."""
    dest, writes, files, host_files = params["dest"], [], {}, {}
    for key, (suffix, text) in texts.items():
        files[key] = os.path.join(dest, params["name"] + suffix)
        writes.append((files[key], text))
    if params["host_files"]:
        for item in items:
            text = _fleet_report.render_host_json(item["host"], item.get("result"))
            if text is None:
                continue
            try:
                paths = _fleet_report.host_file_paths(dest, item["host"])
            except ValueError as exc:
                raise ReportError(str(exc)) from None
            written = host_files.setdefault(item["host"], [])
            for suffix, content in ((".json", text), (".md", item.get("markdown"))):
                if content is None:
                    continue
                if not content.endswith("\n"):
                    content += "\n"
                written.append(paths[suffix])
                writes.append((paths[suffix], content))
    return files, host_files, writes


def write_reports(params, items, check_mode=False, diff=False):
    """Build the fleet report from ``items`` (``[{host, result, markdown?, facts?}, ...]``)
    and write its files under ``params["dest"]``; the task's result. A file that already holds
    its text is not written again; in check mode nothing is written and ``changed`` says
    whether something would be. With ``diff``, ``diff`` lists each file whose text changes."""
    items = [dict(item) for item in items]
    for item in items:
        if not isinstance(item.get("host"), str):
            raise ReportError("each item of results needs a host name, found %r" % (item,))
        if item.get("markdown") is None:
            item["markdown"] = _fleet_report.render_host_markdown(
                item["host"], item.get("result"), params["generated"], item.get("facts")
            )
    if "/" in params["name"] or not params["name"]:
        raise ReportError("name must be a file name without /, got %r" % params["name"])
    previous = _previous_fleet(os.path.join(params["dest"], params["name"] + ".json"))
    fleet = _fleet_report.build_fleet(items, params["generated"], previous)
    should_fail, reason = _fleet_report.verdict(fleet, params["fail_on"])
    texts = {
        "json": (".json", _fleet_report.render_json(fleet)),
        "junit": (".xml", _fleet_report.render_junit(fleet)),
        "html": (".html", _fleet_report.render_html(fleet)),
    }
    files, host_files, writes = _files(params, items, texts)
    changes = []
    try:
        for path, text in writes:
            before = _read(path)
            if before == text:
                continue
            changes.append({"before_header": path, "after_header": path, "before": before or ""})
            changes[-1]["after"] = text
            if not check_mode:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                write_text_atomically(path, text)
    except OSError as exc:
        raise ReportError(
            "cannot write the fleet report under %s: %s" % (params["dest"], exc)
        ) from None
    result = dict(
        changed=bool(changes),
        files=files,
        host_files=host_files,
        summary=fleet["summary"],
        lines=_fleet_report.summary_lines(fleet),
        should_fail=should_fail,
        reason=reason,
        hosts=fleet["hosts"],
        markdown={item["host"]: item["markdown"] for item in items if item.get("markdown")},
    )
    if diff and changes:
        result["diff"] = changes
    return result
