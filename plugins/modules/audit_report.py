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
author:
  - dockerhost.storage maintainers (!UNKNOWN)
options:
  results:
    description:
      - One item per host, each C(host) (the inventory name), C(result) (the registered
        result of M(dockerhost.storage.storage_facts), unreachable or failed results included)
        and optionally C(markdown) (the host's readable report, written as C(<host>.md) with
        O(host_files)).
    type: list
    elements: dict
    required: true
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
      - Also write C(<host>.json) for every host the facts task ran on, with
        C(inventory_hostname), C(docker_storage_support) (the driver support report) and
        C(docker_storage) (the whole fact), and C(<host>.md) from the item's C(markdown).
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
    results: "{{ ansible_play_hosts_all | map('extract', hostvars, 'audit_host_result') | list }}"
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
  description: The per-host files written with O(host_files), keyed by host, each a list
    of paths.
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
    C(engine_version), C(driver), C(data_root), C(usage), C(checks), C(findings).
  returned: success
  type: list
  elements: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerhost.storage.plugins.module_utils import _fleet_report
from ansible_collections.dockerhost.storage.plugins.module_utils._atomic_file import (
    write_text_atomically,
)


def argument_spec():
    return dict(
        results=dict(type="list", elements="dict", required=True),
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


def run(module):
    params = module.params
    for item in params["results"]:
        if not isinstance(item.get("host"), str):
            module.fail_json(msg="each item of results needs a host name, found %r" % item)
    if "/" in params["name"] or not params["name"]:
        module.fail_json(msg="name must be a file name without /, got %r" % params["name"])
    fleet = _fleet_report.build_fleet(params["results"], params["generated"])
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
            for item in params["results"]:
                text = _fleet_report.render_host_json(item["host"], item.get("result"))
                if text is None:
                    continue
                if "/" in item["host"] or item["host"] in (".", ".."):
                    module.fail_json(msg="host %r cannot name a file" % item["host"])
                written = host_files.setdefault(item["host"], [])
                for suffix, content in ((".json", text), (".md", item.get("markdown"))):
                    if content is None:
                        continue
                    if not content.endswith("\n"):
                        content += "\n"
                    path = os.path.join(params["dest"], item["host"] + suffix)
                    written.append(path)
                    changed = _write(path, content) or changed
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
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=False)
    run(module)


if __name__ == "__main__":
    main()
