#!/usr/bin/python
# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: audit_report
short_description: Write the fleet report of a Docker storage audit
version_added: 0.1.0
description:
  - Turns every host's M(dockerhost.storage.storage_facts) result into one fleet report and
    writes it as JSON (C(<name>.json)), JUnit XML with one test case per host and check
    (C(<name>.xml)) and a self-contained HTML page with a sortable per-host table and bar
    charts of inode and byte usage (C(<name>.html), no external assets).
  - Meant to run once, on the controller (C(run_once) and C(delegate_to localhost)), as the
    C(dockerhost.storage.audit) role does.
  - Unreachable hosts and hosts the facts task failed on are reported as such.
  - What each host sent is checked before it is used. A host whose result does not have the
    shape the report reads (a string where a number belongs, a missing key) is reported with
    status C(error) and a reason naming the host and the key; the other hosts are reported
    as usual.
  - The per-host files go to the C(hosts/) subdirectory of O(dest), so that no host name
    (such as C(fleet)) can overwrite the fleet report. Files an earlier version wrote
    directly into O(dest) are left as they are.
  - Every string a host sent is escaped in its readable report (control characters such as a
    newline are written as C(\n), Markdown punctuation gets a backslash), so that it cannot
    start a heading, a list item, a link or HTML.
author:
  - dockerhost.storage maintainers (!UNKNOWN)
options:
  results:
    description:
      - One item per host, each C(host) (the inventory name), C(result) (the registered
        result of M(dockerhost.storage.storage_facts), unreachable or failed results included)
        and optionally C(markdown) (the host's readable report, written as
        C(hosts/<host>.md) with O(host_files); when left out, the module renders it).
      - Either this or O(hosts) is required.
    type: list
    elements: dict
  hosts:
    description:
      - The inventory names of the hosts of the report, in place of O(results); each host's
        result is taken from O(host_results).
      - One dictionary keyed by host is cheaper to build on the controller than one list item
        per host (see the role's tasks).
    type: list
    elements: str
  host_results:
    description:
      - With O(hosts), the registered result of M(dockerhost.storage.storage_facts) of each
        host it ran on, keyed by host.
    type: dict
    default: {}
  host_facts:
    description:
      - The C(ansible_facts) of each host, keyed by host, when facts were gathered; each
        host's readable report then names its FQDN, distribution and the time its facts were
        gathered.
    type: dict
    default: {}
  dest:
    description:
      - The directory the reports are written to; created when missing.
    type: path
    required: true
  name:
    description:
      - The file name of the reports, without extension.
    type: str
    default: fleet
  fail_on:
    description:
      - C(fail) makes RV(should_fail) true when a host has a failing finding, is unreachable
        or could not be audited; C(warn) also when a host has a warning; C(never) never.
      - The module itself does not fail for findings; the role fails the play on RV(should_fail).
    type: str
    choices: [fail, warn, never]
    default: fail
  generated:
    description:
      - The time stamp shown in the reports.
    type: str
  host_files:
    description:
      - Also write C(hosts/<host>.json) under O(dest) for every host the facts task ran on,
        with C(inventory_hostname), C(docker_storage_support) (the driver support report) and
        C(docker_storage) (the whole fact, as the host sent it), and C(hosts/<host>.md), the
        host's readable report.
      - A host whose name cannot name a file (empty, C(.), C(..), or with C(/)) fails the
        task.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: none
    details: The reports are files on the controller; run the task with C(check_mode=false).
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Write the fleet report on the controller
  dockerhost.storage.audit_report:
    hosts: "{{ ansible_play_hosts_all }}"
    # Every host's registered storage_facts result, keyed by host (null where it did not run).
    host_results: >-
      {{ dict(ansible_play_hosts_all
              | zip(ansible_play_hosts_all | map('extract', hostvars, 'audit_host_result')
                    | map('default', none))) }}
    dest: "{{ playbook_dir }}/reports"
  run_once: true
  delegate_to: localhost
  register: fleet
"""

RETURN = r"""
files:
  description: The fleet report's files, keyed C(json), C(junit), C(html).
  returned: success
  type: dict
host_files:
  description: The per-host files written with O(host_files) (under C(hosts/) in O(dest)),
    keyed by host, each a list of paths.
  returned: success
  type: dict
summary:
  description: Counts of hosts by status (C(ok), C(warn), C(fail), C(no_docker),
    C(unreachable), C(error)), C(hosts), C(findings_fail) and C(findings_warn).
  returned: success
  type: dict
lines:
  description: A short account of the fleet, one line per host after the totals.
  returned: success
  type: list
  elements: str
should_fail:
  description: Whether the play should fail under O(fail_on).
  returned: success
  type: bool
reason:
  description: Why it should fail, else null.
  returned: success
  type: str
hosts:
  description: One entry per host, each C(host), C(status), C(reason), C(docker),
    C(engine_version), C(driver), C(data_root), C(usage), C(checks), C(findings). A host
    whose result the report cannot read has status C(error) and a C(reason) naming the key.
  returned: success
  type: list
  elements: dict
markdown:
  description: Each audited host's readable report (as written to C(hosts/<host>.md)),
    keyed by host; hosts the facts task did not run on are left out.
  returned: success
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerhost.storage.plugins.module_utils import _fleet_report
from ansible_collections.dockerhost.storage.plugins.module_utils._atomic_file import (
    write_text_atomically,
)


def argument_spec():
    return dict(
        results=dict(type="list", elements="dict"),
        hosts=dict(type="list", elements="str"),
        host_results=dict(type="dict", default={}),
        host_facts=dict(type="dict", default={}),
        dest=dict(type="path", required=True),
        name=dict(type="str", default="fleet"),
        fail_on=dict(type="str", choices=list(_fleet_report.FAIL_ON), default="fail"),
        generated=dict(type="str"),
        host_files=dict(type="bool", default=False),
    )


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def _write(path, text):
    """Write ``text`` to ``path`` unless it holds it already; whether it was written."""
    if _read(path) == text:
        return False
    write_text_atomically(path, text)
    return True


def _results(params):
    """``[{host, result, markdown}, ...]`` from O(results) or from O(hosts) and
    O(host_results); the markdown is rendered where an item does not bring it."""
    if params["results"] is not None:
        items = [dict(item) for item in params["results"]]
    else:
        items = [
            {"host": host, "result": params["host_results"].get(host)} for host in params["hosts"]
        ]
    for item in items:
        if item.get("markdown") is None and isinstance(item.get("host"), str):
            item["markdown"] = _fleet_report.render_host_markdown(
                item["host"],
                item.get("result"),
                params["generated"],
                params["host_facts"].get(item["host"]),
            )
    return items


def run(module):
    params = module.params
    results = _results(params)
    for item in results:
        if not isinstance(item.get("host"), str):
            module.fail_json(msg="each item of results needs a host name, found %r" % item)
    if "/" in params["name"] or not params["name"]:
        module.fail_json(msg="name must be a file name without /, got %r" % params["name"])
    fleet = _fleet_report.build_fleet(results, params["generated"])
    should_fail, reason = _fleet_report.verdict(fleet, params["fail_on"])
    texts = {
        "json": (".json", _fleet_report.render_json(fleet)),
        "junit": (".xml", _fleet_report.render_junit(fleet)),
        "html": (".html", _fleet_report.render_html(fleet)),
    }
    files = {}
    host_files = {}
    changed = False
    try:
        os.makedirs(params["dest"], exist_ok=True)
        for key, (suffix, text) in texts.items():
            path = os.path.join(params["dest"], params["name"] + suffix)
            files[key] = path
            changed = _write(path, text) or changed
        if params["host_files"]:
            for item in results:
                text = _fleet_report.render_host_json(item["host"], item.get("result"))
                if text is None:
                    continue
                try:
                    paths = _fleet_report.host_file_paths(params["dest"], item["host"])
                except ValueError as exc:
                    module.fail_json(msg=str(exc))
                os.makedirs(os.path.join(params["dest"], _fleet_report.HOSTS_DIR), exist_ok=True)
                written = host_files.setdefault(item["host"], [])
                for suffix, content in ((".json", text), (".md", item.get("markdown"))):
                    if content is None:
                        continue
                    if not content.endswith("\n"):
                        content += "\n"
                    written.append(paths[suffix])
                    changed = _write(paths[suffix], content) or changed
    except OSError as exc:
        module.fail_json(msg="cannot write the fleet report under %s: %s" % (params["dest"], exc))
    module.exit_json(
        changed=changed,
        files=files,
        host_files=host_files,
        summary=fleet["summary"],
        lines=_fleet_report.summary_lines(fleet),
        should_fail=should_fail,
        reason=reason,
        hosts=fleet["hosts"],
        markdown={item["host"]: item["markdown"] for item in results if item.get("markdown")},
    )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("results", "hosts")],
        required_one_of=[("results", "hosts")],
        supports_check_mode=False,
    )
    run(module)


if __name__ == "__main__":
    main()
