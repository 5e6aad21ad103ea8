"""The fleet report: host statuses, the verdict under audit_fail_on, JUnit and HTML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils import _fleet_report


def _result(state="running", findings=(), checks=None):
    findings = list(findings)
    checks = checks if checks is not None else findings + [_check("d_type", "pass")]
    return {
        "docker": {"state": state, "reason": None if state == "running" else "no engine"},
        "engine": {"version": "20.10.24", "running_driver": "overlay2"},
        "daemon_json": {"storage_driver": None},
        "data_root": "/srv/docker",
        "capacity": {
            "filesystems": [
                {
                    "role": "data_root",
                    "path": "/srv/docker",
                    "mount_point": "/srv",
                    "fstype": "ext4",
                    "inodes": {"limited": True, "used": 96, "total": 100, "used_percent": 96},
                    "bytes": {"used": 10, "total": 100, "used_percent": 10},
                }
            ]
        },
        "checks": checks,
        "findings": findings,
    }


def _check(name, status, cis=None):
    return {
        "check": name,
        "cis": cis,
        "severity": "fail",
        "status": status,
        "message": "%s is %s" % (name, status),
        "evidence": {"why": name},
    }


FLEET = [
    {"host": "ok", "result": _result()},
    {"host": "full", "result": _result(findings=[_check("free_inodes", "fail")])},
    {"host": "slow", "result": _result(findings=[_check("native_overlay_diff", "warn")])},
    {"host": "bare", "result": _result(state="absent", checks=[_check("d_type", "skipped")])},
    {"host": "gone", "result": {"unreachable": True, "msg": "ssh: connect refused"}},
    {"host": "broken", "result": {"failed": True, "msg": "cannot read mountinfo"}},
]


def test_host_statuses_and_summary():
    fleet = _fleet_report.build_fleet(FLEET)
    statuses = {h["host"]: h["status"] for h in fleet["hosts"]}
    assert statuses == {
        "ok": "ok",
        "full": "fail",
        "slow": "warn",
        "bare": "no_docker",
        "gone": "unreachable",
        "broken": "error",
    }
    assert fleet["summary"]["hosts"] == 6
    assert fleet["summary"]["findings_fail"] == 1
    assert fleet["summary"]["findings_warn"] == 1
    assert [f["host"] for f in fleet["findings"]] == ["full", "slow"]


@pytest.mark.parametrize(
    "hosts, fail_on, should_fail",
    [
        (["ok", "bare"], "fail", False),
        (["ok", "slow"], "fail", False),
        (["ok", "slow"], "warn", True),
        (["full"], "fail", True),
        (["full"], "never", False),
        (["gone"], "fail", True),
        (["broken"], "fail", True),
    ],
)
def test_verdict(hosts, fail_on, should_fail):
    fleet = _fleet_report.build_fleet([item for item in FLEET if item["host"] in hosts])
    failed, reason = _fleet_report.verdict(fleet, fail_on)
    assert failed is should_fail
    if failed:
        assert fail_on in reason


def test_junit_has_one_case_per_host_and_check():
    fleet = _fleet_report.build_fleet(FLEET)
    root = ET.fromstring(_fleet_report.render_junit(fleet))
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"ok", "full", "slow", "bare", "gone", "broken"}
    assert root.get("failures") == "1"
    assert root.get("errors") == "2"
    full = suites["full"]
    assert [c.get("name") for c in full.findall("testcase")] == ["free_inodes", "d_type"]
    assert full.find("testcase/failure").get("message") == "free_inodes is fail"
    assert suites["gone"].find("testcase/error").get("type") == "unreachable"
    assert suites["bare"].find("testcase/skipped") is not None


def test_html_is_self_contained_and_escaped():
    results = FLEET + [{"host": "<b>evil</b>", "result": _result()}]
    page = _fleet_report.render_html(_fleet_report.build_fleet(results, "2026-01-01T00:00:00Z"))
    assert "<b>evil</b>" not in page
    assert "&lt;b&gt;evil&lt;/b&gt;" in page
    for external in ("src=", "href=", "@import", "url("):
        assert external not in page
    assert page.count('class="bar"') == 2 * len(results)


def test_json_round_trips():
    fleet = _fleet_report.build_fleet(FLEET)
    assert json.loads(_fleet_report.render_json(fleet)) == fleet


def test_host_json_only_for_hosts_the_facts_task_ran_on():
    result = _result()
    result["ansible_facts"] = {"docker_storage": {"support": {"recommended": "overlay2"}}}
    document = json.loads(_fleet_report.render_host_json("ok", result))
    assert document["inventory_hostname"] == "ok"
    assert document["docker_storage_support"] == {"recommended": "overlay2"}
    assert _fleet_report.render_host_json("gone", FLEET[4]["result"]) is None
    assert _fleet_report.render_host_json("broken", FLEET[5]["result"]) is None
