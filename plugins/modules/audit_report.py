# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# The action plugin plugins/action/audit_report.py does the work, on the controller; this file
# only documents it.

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
  - An action that runs on the controller and nowhere else; it connects to no host. Meant to
    run once (C(run_once)), as the C(dockerhost.storage.audit) role does.
  - Each host's result is read from the play's hostvars (the variable O(result_var) that the
    facts task registered), not passed in the task, so a fleet's results are not copied into the
    task's arguments.
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
  - A file that already holds what it would get is not written again; the task is changed
    only when a file's content changes.
author:
  - dockerhost.storage maintainers (!UNKNOWN)
options:
  hosts:
    description:
      - The inventory names of the hosts of the report, usually C(ansible_play_hosts_all).
        Each host's result is the variable O(result_var) in its hostvars; a host where it is
        not set is reported as not audited.
      - When a host's facts were gathered, its readable report names its FQDN, distribution
        and the time its facts were gathered.
      - Either this or O(results) is required.
    type: list
    elements: str
  result_var:
    description:
      - With O(hosts), the name of the variable that holds each host's registered result of
        M(dockerhost.storage.storage_facts) (unreachable or failed results included), as
        C(register) named it.
    type: str
    default: audit_facts_result
  results:
    description:
      - In place of O(hosts), the results themselves, one item per host, each C(host) (the
        inventory name), C(result) (the registered result of
        M(dockerhost.storage.storage_facts)), optionally C(facts) (the host's C(ansible_facts))
        and C(markdown) (the host's readable report, written as C(hosts/<host>.md) with
        O(host_files); when left out, it is rendered from C(result)).
    type: list
    elements: dict
  dest:
    description:
      - The directory on the controller the reports are written to; created when missing.
      - The fleet report already there (C(<name>.json)) is the previous run each host's
        C(trend) compares with, when it is at least an hour older; a newer one keeps the older
        run it compared with (C(baseline)) for the next report.
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
      - The task itself does not fail for findings; the role fails the play on RV(should_fail).
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
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Nothing is written; RV(files) and RV(host_files) name the files, and C(changed)
      says whether any of them would change. The audit role runs this task with
      C(check_mode=false), so that an audit under C(--check) still writes its reports.
  diff_mode:
    support: full
    details: The text before and after of each file that changes.
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Write the fleet report on the controller
  dockerhost.storage.audit_report:
    hosts: "{{ ansible_play_hosts_all }}"
    # The variable each host's storage_facts task registered.
    result_var: audit_host_result
    dest: "{{ playbook_dir }}/reports"
    host_files: true
  run_once: true
  register: fleet
"""

RETURN = r"""
files:
  description: The fleet report's files, keyed C(json), C(junit), C(html).
  returned: success
  type: dict
host_files:
  description: The per-host files written with O(host_files) (under C(hosts/) in O(dest)),
    keyed by host, each a list of paths; in check mode, the files it would write.
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
    C(engine_version), C(driver), C(data_root), C(usage), C(checks), C(findings), C(trend). A
    host whose result the report cannot read has status C(error) and a C(reason) naming the
    key. C(trend) is null without an earlier run to compare with, else C(days) (between the
    runs), and C(bytes) and C(inodes) each C(per_day) (used per day) and C(days_until_full)
    (null when usage did not grow). The fleet report's JSON file also holds C(by_check) (for
    each check, the hosts per status), C(previous) (when the compared run was made) and
    C(baseline).
  returned: success
  type: list
  elements: dict
markdown:
  description: Each audited host's readable report (as written to C(hosts/<host>.md)),
    keyed by host; hosts the facts task did not run on are left out.
  returned: success
  type: dict
"""
