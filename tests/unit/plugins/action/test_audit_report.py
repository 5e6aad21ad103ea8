"""The audit_report action through ansible-playbook, as a user runs it: fake hosts in an
inventory carry recorded storage_facts results in a variable, and the action reads them from
hostvars and writes the reports on the controller. Nothing connects to a host."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
from collection_path import collections_root

from ansible_collections.dockerhost.storage.plugins.plugin_utils import _fleet_report

FIXTURES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "fixtures",
    "audit_report",
)
GENERATED = "2026-12-02T07:58:46Z"
FACTS = {
    "fqdn": "gathered.example.org",
    "distribution": "Debian",
    "distribution_version": "12",
    "date_time": {"iso8601": "2026-01-02T00:00:00Z"},
}

PLAYBOOK = """
- name: Audit report from recorded results
  hosts: all:!a/b
  gather_facts: false
  vars:
    report:
      hosts: "{{ ansible_play_hosts_all }}"
      result_var: recorded_result
      dest: "{{ dest }}"
      host_files: true
      fail_on: never
      generated: "%(generated)s"
  tasks:
    - name: Facts as gathering would set them, for one host
      ansible.builtin.set_fact:
        cacheable: true
        fqdn: "%(fqdn)s"
        distribution: "%(distribution)s"
        distribution_version: "%(distribution_version)s"
        date_time: {iso8601: "%(iso8601)s"}
      when: inventory_hostname == 'gathered'

    - name: Planned in check mode
      dockerhost.storage.audit_report: "{{ report }}"
      check_mode: true
      diff: true
      run_once: true

    - name: Written
      dockerhost.storage.audit_report: "{{ report }}"
      run_once: true

    - name: Written again
      dockerhost.storage.audit_report: "{{ report }}"
      diff: true
      run_once: true

    - name: Checked again
      dockerhost.storage.audit_report: "{{ report }}"
      check_mode: true
      diff: true
      run_once: true

    - name: Given the results themselves
      dockerhost.storage.audit_report:
        results:
          - host: gathered
            result: "{{ hostvars['gathered'].recorded_result }}"
            facts: "{{ hostvars['gathered'].ansible_facts }}"
        dest: "{{ dest }}/listed"
        host_files: true
        generated: "%(generated)s"
      run_once: true

    - name: A host whose name cannot name a file
      dockerhost.storage.audit_report: "{{ report | combine({'hosts': ['localhost', 'a/b']}) }}"
      run_once: true
      ignore_errors: true

    - name: The option that passed the results keyed by host
      dockerhost.storage.audit_report:
        hosts: [localhost]
        host_results: {localhost: {}}
        dest: "{{ dest }}"
      run_once: true
      ignore_errors: true
"""


def _recorded():
    with open(os.path.join(FIXTURES, "localhost-result.json"), encoding="utf-8") as handle:
        return json.load(handle)


def _healthy():
    result = _recorded()
    for check in result["checks"]:
        if check["check"] == "data_root_partition":
            check["status"] = "pass"
    result["findings"] = []
    return result


def _odd():
    result = _recorded()
    result["capacity"]["filesystems"][0]["inodes"]["used_percent"] = "12%"
    return result


RESULTS = {
    "localhost": _recorded(),
    "healthy": _healthy(),
    "gathered": _recorded(),
    "fleet": _healthy(),
    "gone": {"unreachable": True, "changed": False, "msg": "ssh: connect refused"},
    "broken": {"failed": True, "changed": False, "msg": "cannot read mountinfo"},
    "odd": _odd(),
    "a/b": _recorded(),
}
# In the inventory, without a result: the facts task never ran there.
NEVER_RAN = "never-ran"


def _tasks(output):
    """``{task name: the result of its one host}`` from the json callback's output."""
    tasks = {}
    for task in output["plays"][0]["tasks"]:
        results = list(task["hosts"].values())
        tasks[task["task"]["name"]] = results[0] if len(results) == 1 else results
    return tasks


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("audit-report")
    hosts = {name: {"recorded_result": result} for name, result in RESULTS.items()}
    hosts[NEVER_RAN] = {}
    for variables in hosts.values():
        variables.update(ansible_connection="local", ansible_python_interpreter=sys.executable)
    inventory = base / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": hosts}}), encoding="utf-8")
    playbook = base / "playbook.yml"
    playbook.write_text(
        PLAYBOOK % dict(FACTS, iso8601=FACTS["date_time"]["iso8601"], generated=GENERATED),
        encoding="utf-8",
    )
    dest = base / "reports"
    completed = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-i",
            str(inventory),
            "-e",
            "dest=%s" % dest,
            str(playbook),
        ],
        capture_output=True,
        text=True,
        env=dict(
            os.environ,
            LANG="C.UTF-8",
            LC_ALL="C.UTF-8",
            ANSIBLE_COLLECTIONS_PATH=collections_root(),
            ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
            ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        ),
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    return {"tasks": _tasks(json.loads(completed.stdout)), "dest": str(dest)}


def _expected():
    """Every file the report writes, with its text, from the pure functions on the same data."""
    names = sorted(name for name in RESULTS if name != "a/b") + [NEVER_RAN]
    items = [
        {
            "host": name,
            "result": copy.deepcopy(RESULTS.get(name)),
            "markdown": _fleet_report.render_host_markdown(
                name, RESULTS.get(name), GENERATED, FACTS if name == "gathered" else None
            ),
        }
        for name in names
    ]
    fleet = _fleet_report.build_fleet(items, GENERATED)
    files = {
        "fleet.json": _fleet_report.render_json(fleet),
        "fleet.xml": _fleet_report.render_junit(fleet),
        "fleet.html": _fleet_report.render_html(fleet),
    }
    for item in items:
        raw = _fleet_report.render_host_json(item["host"], item["result"])
        if raw is not None:
            files["hosts/%s.json" % item["host"]] = raw
            files["hosts/%s.md" % item["host"]] = item["markdown"]
    return files


def _on_disk(dest):
    found = {}
    for directory, _dirs, names in os.walk(dest):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, encoding="utf-8") as handle:
                found[os.path.relpath(path, dest)] = handle.read()
    return found


def test_the_files_are_the_report_of_the_hosts_results_read_from_hostvars(run):
    written = run["tasks"]["Written"]
    assert written["changed"] is True
    on_disk = _on_disk(run["dest"])
    listed = {name: text for name, text in on_disk.items() if name.startswith("listed/")}
    assert {name: text for name, text in on_disk.items() if name not in listed} == _expected()
    statuses = {host["host"]: host["status"] for host in written["hosts"]}
    assert statuses == {
        "localhost": "fail",
        "healthy": "ok",
        "gathered": "fail",
        "fleet": "ok",
        "gone": "unreachable",
        "broken": "error",
        "odd": "error",
        NEVER_RAN: "error",
    }
    assert written["files"] == {
        key: os.path.join(run["dest"], "fleet" + suffix)
        for key, suffix in (("json", ".json"), ("junit", ".xml"), ("html", ".html"))
    }
    assert sorted(written["host_files"]) == ["fleet", "gathered", "healthy", "localhost", "odd"]
    assert written["markdown"]["localhost"] == on_disk["hosts/localhost.md"]
    assert written["should_fail"] is False and written["reason"] is None


def test_a_recorded_host_gets_the_report_recorded_for_it(run):
    with open(
        os.path.join(FIXTURES, "host_markdown", "recorded-localhost.md"), encoding="utf-8"
    ) as f:
        assert _on_disk(run["dest"])["hosts/localhost.md"] == f.read()


def test_gathered_facts_are_read_from_hostvars(run):
    lines = _on_disk(run["dest"])["hosts/gathered.md"].splitlines()
    assert lines[2:4] == ["Host: gathered.example.org, Debian 12", "Checked: 2026-01-02T00:00:00Z"]
    assert "Checked: %s" % GENERATED in _on_disk(run["dest"])["hosts/healthy.md"]


def test_check_mode_writes_nothing_and_says_what_would_change(run):
    planned = run["tasks"]["Planned in check mode"]
    written = run["tasks"]["Written"]
    assert planned["changed"] is True
    for key in ("files", "host_files", "summary", "hosts", "markdown", "lines"):
        assert planned[key] == written[key], key
    # Every file was new: the diff has them all, empty before, with the text written later.
    expected = _expected()
    after = {
        os.path.relpath(change["after_header"], run["dest"]): change["after"]
        for change in planned["diff"]
    }
    assert after == expected
    assert all(change["before"] == "" for change in planned["diff"])


def test_unchanged_files_are_not_written_again(run):
    for name in ("Written again", "Checked again"):
        task = run["tasks"][name]
        assert task["changed"] is False, name
        assert "diff" not in task, name


def test_results_given_in_the_task_are_reported_the_same(run):
    on_disk = _on_disk(run["dest"])
    assert on_disk["listed/hosts/gathered.md"] == on_disk["hosts/gathered.md"]
    assert on_disk["listed/hosts/gathered.json"] == on_disk["hosts/gathered.json"]


def test_a_host_name_that_cannot_name_a_file_fails_the_task(run):
    refused = run["tasks"]["A host whose name cannot name a file"]
    assert refused["failed"] is True
    assert 'host "a/b" cannot name a file under ' in refused["msg"]


def test_the_results_keyed_by_host_are_no_option_any_more(run):
    refused = run["tasks"]["The option that passed the results keyed by host"]
    assert refused["failed"] is True
    assert "host_results" in refused["msg"]
