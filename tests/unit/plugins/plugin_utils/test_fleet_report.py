"""The fleet report: host statuses, the verdict under audit_fail_on, JUnit and HTML."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.dockerhost.storage.plugins.plugin_utils import _fleet_report


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


def _support(engine_version="20.10.24"):
    judged = "no Docker engine found: judged for Docker Engine 29.0"
    return {
        "path": "/srv/docker",
        "path_source": "daemon.json",
        "checked_path": "/srv/docker",
        "backing_filesystem": {
            "type": "ext4",
            "magic": "0xef53",
            "source": "/dev/vdb",
            "mount_point": "/srv",
            "mount_options": "rw,relatime",
            "super_options": None,
            "d_type": True,
            "project_quota": None,
        },
        "overlay_probe": {"attempted": True, "ok": False, "error": "EPERM"},
        "engine": {
            "version": engine_version,
            "version_source": "api",
            "api_version": "1.41",
            "running_driver": "overlay2" if engine_version else None,
            "configured_driver": None,
            "problem": None if engine_version else "no socket",
        },
        "kernel": {
            "release": "6.1.0",
            "config_source": None,
            "overlay": {"available": True, "how": "builtin"},
            "aufs": {"available": False, "how": "absent", "blocked_by": ["/etc/modprobe.d/x"]},
        },
        "drivers": {
            "vfs": {"supported": True, "reasons": [], "warnings": [judged, "vfs is slow"]},
            "overlay2": {"supported": True, "reasons": [], "warnings": [judged]},
            "aufs": {
                "supported": False,
                "removed": True,
                "reasons": ["aufs was removed"],
                "warnings": [judged],
            },
        },
        "would_pick": {"driver": "overlay2", "image_store": "graphdriver", "reason": "first"},
        "recommended": "overlay2",
    }


def test_host_markdown_reads_as_the_report():
    result = _result(findings=[_check("daemon_json_mode", "fail", cis="3.18")])
    result["support"] = _support()
    text = _fleet_report.render_host_markdown("web1", result, "2026-01-02T03:04:05Z")
    lines = text.splitlines()
    assert lines[:3] == ["# Docker storage audit: web1", "", "Checked: 2026-01-02T03:04:05Z"]
    for line in (
        "- configuration read from: not found",
        "  - disabled by /etc/modprobe.d/x",
        "- path: /srv/docker (from daemon.json)",
        "- backing filesystem: ext4 (0xef53) from /dev/vdb, mounted at /srv",
        "- mount options: rw,relatime",
        "- d_type: yes",
        "- project quota: unknown",
        "- overlay test mount: failed: EPERM",
        "- Docker Engine 20.10.24 (from the Engine API, API 1.41)",
        "- storage-driver in daemon.json: not set",
        "Note: no Docker engine found: judged for Docker Engine 29.0",
        "- aufs: not supported (removed in this engine)",
        "  - warning: vfs is slow",
        "- dockerd would pick: overlay2 (graphdriver image store): first",
        "- fail: daemon_json_mode (CIS 3.18): daemon_json_mode is fail",
    ):
        assert line in lines
    # Drivers in the usual order; a warning every driver carries is shown once, as a note.
    assert lines.index("- overlay2: supported") < lines.index("- vfs: supported")
    assert text.count("judged for Docker Engine 29.0") == 1
    assert "examined:" not in text
    assert "Docker: " not in text
    assert text.endswith("\n")


def test_host_markdown_of_a_host_without_docker_and_with_facts():
    result = _result(state="absent", checks=[_check("d_type", "skipped")])
    result["support"] = _support(engine_version=None)
    facts = {
        "fqdn": "web1.example.org",
        "distribution": "Debian",
        "distribution_version": "12",
        "date_time": {"iso8601": "2026-01-02T00:00:00Z"},
    }
    lines = _fleet_report.render_host_markdown("web1", result, "later", facts).splitlines()
    assert "Host: web1.example.org, Debian 12" in lines
    assert "Checked: 2026-01-02T00:00:00Z" in lines
    start = lines.index("Docker is not installed; this host could run:")
    assert lines[start + 1 : start + 3] == ["- overlay2", "- vfs"]
    assert "Engine lookup: no socket" in lines
    assert "Docker: absent (no engine)" in lines
    assert lines[-1] == "- none"


def test_host_markdown_only_for_hosts_the_facts_task_ran_on():
    for item in FLEET[-2:]:
        assert _fleet_report.render_host_markdown(item["host"], item["result"]) is None


def test_a_host_sending_a_string_for_a_number_is_an_error_naming_it_and_the_key():
    bad = _result()
    bad["capacity"]["filesystems"][0]["inodes"]["used_percent"] = "12%"
    results = FLEET + [{"host": "odd", "result": bad}]
    fleet = _fleet_report.build_fleet(results, "2026-01-01T00:00:00Z")
    by_host = {h["host"]: h for h in fleet["hosts"]}
    assert by_host["odd"]["status"] == "error"
    assert by_host["odd"]["reason"] == (
        "the storage_facts result of odd cannot be reported: key "
        "capacity.filesystems[0].inodes.used_percent must be a number or null, found the "
        'string "12%"; run the same version of dockerhost.storage on the controller and the '
        "hosts"
    )
    assert by_host["odd"]["usage"] is None and by_host["odd"]["findings"] == []
    # The others are reported as before, and every rendering still works.
    before = {h["host"]: h for h in _fleet_report.build_fleet(FLEET)["hosts"]}
    assert {name: h for name, h in by_host.items() if name != "odd"} == before
    assert fleet["summary"]["error"] == 2
    page = _fleet_report.render_html(fleet)
    assert 'data-host="odd"' in page
    suites = {
        s.get("name"): s for s in ET.fromstring(_fleet_report.render_junit(fleet)).iter("testsuite")
    }
    assert "capacity.filesystems[0].inodes.used_percent" in (
        suites["odd"].find("testcase/error").get("message")
    )
    assert any(line.startswith("odd: error: ") for line in _fleet_report.summary_lines(fleet))
    # Its readable report says so instead of looking complete.
    bad["support"] = _support()
    assert _fleet_report.render_host_markdown("odd", bad, "t").startswith(
        "# Docker storage audit: odd\n\nNot reported: the storage_facts result of odd cannot "
        "be reported: key capacity.filesystems\\[0\\].inodes.used_percent must be"
    )


@pytest.mark.parametrize(
    "change, key, found",
    [
        (lambda r: r.update(checks="all good"), "checks", "the string"),
        (lambda r: r["findings"].append("free_inodes"), "findings[0]", "the string"),
        (lambda r: r["docker"].update(state=3), "docker.state", "the number 3"),
        (lambda r: r.update(engine=None), "engine", "null"),
        (lambda r: r["engine"].pop("version"), "engine.version", "nothing"),
        (lambda r: r["capacity"]["filesystems"][0]["bytes"].update(used=1.5), "bytes.used", "1.5"),
        (lambda r: r["checks"][0].update(message=["a", "b"]), "checks[0].message", "a list"),
        (lambda r: r["checks"][0].update(status=True), "checks[0].status", "true"),
    ],
)
def test_each_misshapen_key_is_named(change, key, found):
    result = _result()
    change(result)
    entry = _fleet_report.host_entry("web1", result)
    assert entry["status"] == "error"
    assert "result of web1 cannot be reported: key " in entry["reason"]
    assert key in entry["reason"] and found in entry["reason"], entry["reason"]


def test_a_result_that_is_no_object_and_a_message_that_is_no_text_are_reported():
    assert _fleet_report.host_entry("web1", "garbage")["reason"] == (
        'the storage_facts result of web1 must be an object, found the string "garbage"'
    )
    failed = _fleet_report.host_entry("web2", {"failed": True, "msg": {"rc": 1}})
    assert (failed["status"], failed["reason"]) == ("error", '{"rc": 1}')


def test_per_host_files_go_under_hosts_so_a_host_named_fleet_cannot_overwrite_the_report():
    paths = _fleet_report.host_file_paths("/srv/reports", "fleet")
    assert paths == {".json": "/srv/reports/hosts/fleet.json", ".md": "/srv/reports/hosts/fleet.md"}
    for name in ("", ".", "..", "a/b", "a\0b"):
        with pytest.raises(ValueError, match="cannot name a file under /srv/reports/hosts"):
            _fleet_report.host_file_paths("/srv/reports", name)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("/var/lib/docker", "/var/lib/docker"),
        ("daemon_json_mode", "daemon_json_mode"),
        ("x\n# Forged heading", "x\\n\\# Forged heading"),
        ("a\r\n- forged item", "a\\r\\n- forged item"),
        ("one | two", "one \\| two"),
        ("`rm -rf`", "\\`rm -rf\\`"),
        ("<script>x</script>", "\\<script\\>x\\</script\\>"),
        ("[click](http://x)", "\\[click\\](http://x)"),
        ("*bold* _it_ ~~s~~", "\\*bold\\* \\_it\\_ \\~\\~s\\~\\~"),
        ("&amp; \\", "\\&amp; \\\\"),
        ("\x1b[31mred", "\\x1b\\[31mred"),
        (None, "None"),
        (12, "12"),
    ],
)
def test_markdown_text_escapes_what_could_change_the_document(value, expected):
    assert _fleet_report.markdown_text(value) == expected


def test_host_strings_cannot_forge_headings_or_list_items_in_the_markdown():
    result = _result(
        findings=[_check("free_inodes", "fail")], checks=[_check("free_inodes", "fail")]
    )
    result["findings"][0]["message"] = "low\n# All clear\n- none"
    result["support"] = _support()
    result["support"]["path"] = "/srv/docker\n## Verdict\n- recommended: aufs"
    result["support"]["checked_path"] = result["support"]["path"]
    result["support"]["kernel"]["release"] = "6.1 | <b>x</b>"
    text = _fleet_report.render_host_markdown("web1", result, "t")
    lines = text.splitlines()
    headings = [line for line in lines if line.startswith("#")]
    assert headings == [
        "# Docker storage audit: web1",
        "## Kernel",
        "## Data-root",
        "## Engine",
        "## Storage drivers",
        "## Verdict",
        "## Findings",
    ]
    assert "- recommended: aufs" not in lines and "- none" not in lines
    assert "- path: /srv/docker\\n\\#\\# Verdict\\n- recommended: aufs (from daemon.json)" in lines
    assert "- fail: free_inodes: low\\n\\# All clear\\n- none" in lines
    assert "- release: 6.1 \\| \\<b\\>x\\</b\\>" in lines


def test_a_misshapen_host_gets_a_short_report_and_its_raw_facts():
    result = _result()
    result["support"] = _support()
    result["support"]["drivers"]["vfs"]["reasons"] = "none"
    result["ansible_facts"] = {"docker_storage": {"support": result["support"]}}
    text = _fleet_report.render_host_markdown("web1", result, "t")
    assert text == (
        "# Docker storage audit: web1\n\nNot reported: the storage_facts result of web1 "
        "cannot be reported: key support.drivers.vfs.reasons must be a list, found the string "
        '"none"; run the same version of dockerhost.storage on the controller and the hosts.\n'
    )
    document = json.loads(_fleet_report.render_host_json("web1", result))
    assert document["docker_storage_support"]["drivers"]["vfs"]["reasons"] == "none"
    assert _fleet_report.render_host_json("web1", dict(result, ansible_facts="x")) is None


# ---- the readable report, byte for byte ------------------------------------------------------

FIXTURES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "fixtures",
    "audit_report",
)


def _recorded(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return json.load(handle)


def _every_branch():
    """A result that takes the other side of most branches of the report."""
    result = _result(
        state="stopped",
        findings=[_check("native_overlay_diff", "warn"), _check("free_bytes", "fail", cis="x")],
    )
    result["findings"][0]["cis"] = None
    support = _support()
    support["path_source"] = "somewhere"
    support["checked_path"] = "/srv"
    support["backing_filesystem"].update(
        super_options="rw,errors=remount-ro", d_type=False, project_quota=True, source=None
    )
    support["overlay_probe"] = {"attempted": False}
    support["engine"].update(
        version_source="none", api_version=None, running_driver=None, problem="slow socket"
    )
    support["engine"]["configured_driver"] = "aufs"
    support["kernel"]["config_source"] = "/proc/config.gz"
    support["kernel"]["aufs"]["blacklisted_by"] = ["/etc/modprobe.d/y:3"]
    support["drivers"]["custom"] = {"supported": None, "reasons": [], "warnings": []}
    support["drivers"]["overlay"] = {
        "supported": True,
        "deprecated": True,
        "reasons": [],
        "warnings": ["old"],
    }
    support["would_pick"] = {"driver": None, "reason": "nothing works", "warnings": ["a", "b"]}
    support["recommended"] = None
    result["support"] = support
    return result


def _nothing_runs():
    """No engine, no drivers, a probe that worked, facts without a time of their own."""
    result = _result(state="absent", checks=[])
    support = _support(engine_version=None)
    support["drivers"] = {}
    support["kernel"] = {"release": None}
    support["overlay_probe"] = {"attempted": True, "ok": True}
    support["would_pick"] = {"driver": "vfs", "reason": "last resort"}
    del support["recommended"]
    support["engine"]["configured_driver"] = "btrfs"
    result["support"] = support
    return result


def _probe_failed_silently():
    result = _result()
    result["support"] = _support()
    result["support"]["overlay_probe"] = {"attempted": True, "ok": None, "error": None}
    result["support"]["drivers"] = {
        "vfs": {"supported": False, "reasons": ["a", "b"], "warnings": ["w"]},
        "overlay2": {"supported": True, "reasons": [], "warnings": []},
    }
    return result


def _forged():
    result = _result(
        findings=[_check("free_inodes", "fail")], checks=[_check("free_inodes", "fail")]
    )
    result["findings"][0]["message"] = "low\n# All clear\n- none"
    result["support"] = _support()
    result["support"]["path"] = "/srv/docker\n## Verdict\n- recommended: aufs"
    result["support"]["checked_path"] = result["support"]["path"]
    result["support"]["kernel"]["release"] = "6.1 | <b>x</b>"
    return result


def _misshapen(where):
    result = _result()
    result["support"] = _support()
    if where == "number":
        result["capacity"]["filesystems"][0]["inodes"]["used_percent"] = "12%"
    else:
        result["support"]["drivers"]["vfs"]["reasons"] = "none"
    return result


_FACTS = {
    "fqdn": "web1.example.org",
    "distribution": "Debian",
    "distribution_version": "12",
    "date_time": {"iso8601": "2026-01-02T00:00:00Z"},
}

# name: (host, result, generated, facts); each report is tests/unit/fixtures/audit_report/
# host_markdown/<name>.md.
MARKDOWN_CASES = {
    "report": (
        "web1",
        dict(
            _result(findings=[_check("daemon_json_mode", "fail", cis="3.18")]), support=_support()
        ),
        "2026-01-02T03:04:05Z",
        None,
    ),
    "without-docker-with-facts": (
        "web1",
        dict(_result(state="absent", checks=[_check("d_type", "skipped")]), support=_support(None)),
        "later",
        _FACTS,
    ),
    "forged": ("web1", _forged(), "t", None),
    "misshapen-number": ("odd", _misshapen("number"), "t", None),
    "misshapen-drivers": ("web1", _misshapen("drivers"), "t", None),
    "every-branch": ("db-1_x", _every_branch(), None, {"distribution": "Alpine"}),
    "nothing-runs": ("bare", _nothing_runs(), "t", {"date_time": {}, "fqdn": "x"}),
    "probe-failed-silently": ("web2", _probe_failed_silently(), "t", {"date_time": "x"}),
    "recorded-localhost": (
        "localhost",
        _recorded("localhost-result.json"),
        "2026-12-02T07:58:46Z",
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(MARKDOWN_CASES))
def test_host_markdown_is_the_recorded_report(name):
    host, result, generated, facts = MARKDOWN_CASES[name]
    with open(os.path.join(FIXTURES, "host_markdown", name + ".md"), encoding="utf-8") as handle:
        expected = handle.read()
    assert _fleet_report.render_host_markdown(host, result, generated, facts) == expected


def test_by_check_counts_the_hosts_of_each_status_failing_first():
    fleet = _fleet_report.build_fleet(FLEET)
    table = {
        entry["check"]: (entry["counts"], entry["hosts"]["fail"], entry["hosts"]["warn"])
        for entry in fleet["by_check"]
    }
    assert [entry["check"] for entry in fleet["by_check"]] == [
        "free_inodes",
        "native_overlay_diff",
        "d_type",
    ]
    assert table["free_inodes"] == (
        {"fail": 1, "warn": 0, "pass": 0, "skipped": 0},
        ["full"],
        [],
    )
    # ok, full and slow pass d_type; bare skips it; gone and broken sent nothing.
    assert table["d_type"][0] == {"fail": 0, "warn": 0, "pass": 3, "skipped": 1}
    assert table["native_overlay_diff"][2] == ["slow"]


def test_html_shows_the_checks_by_host_count_before_the_hosts():
    page = _fleet_report.render_html(_fleet_report.build_fleet(FLEET))
    assert page.index('id="by-check"') < page.index('id="hosts"')
    assert (
        '<tr data-check="free_inodes"><td>free_inodes</td><td></td>'
        '<td class="n" data-count="fail">1</td><td class="n" data-count="warn">0</td>'
        '<td class="n" data-count="pass">0</td><td class="n" data-count="skipped">0</td>'
        '<td><ul class="f"><li class="s-fail">fail: full</li></ul></td></tr>'
    ) in page
    # No rule may break a word in the middle to fit a column.
    assert "anywhere" not in page and "break-all" not in page


def _previous_run(fleet, generated, bytes_used, inodes_used):
    """The fleet.json a run ``generated`` earlier would have left, with other usage."""
    previous = json.loads(_fleet_report.render_json(fleet))
    previous["generated"] = generated
    for host in previous["hosts"]:
        if host["usage"]:
            host["usage"].update(bytes_used=bytes_used, inodes_used=inodes_used)
    return previous


def test_trend_is_the_days_until_full_at_the_pace_since_the_previous_run():
    now = _fleet_report.build_fleet(FLEET, "2026-12-02T12:00:00Z")
    # Two days ago: 4 bytes and 90 inodes used; now 10 of 100 bytes and 96 of 100 inodes.
    previous = _previous_run(now, "2026-11-30T12:00:00Z", 4, 90)
    fleet = _fleet_report.build_fleet(FLEET, "2026-12-02T12:00:00Z", previous)
    trends = {h["host"]: h["trend"] for h in fleet["hosts"]}
    assert trends["full"] == {
        "days": 2.0,
        "bytes": {"per_day": 3.0, "days_until_full": 30.0},
        "inodes": {"per_day": 3.0, "days_until_full": 1.3},
    }
    # Hosts without figures now, or not in the previous run, have none.
    assert trends["gone"] is None and trends["broken"] is None
    assert fleet["previous"] == "2026-11-30T12:00:00Z"
    lines = _fleet_report.summary_lines(fleet)
    assert "full: fail: free_inodes (fail); data-root full in 1.3 d (inodes) at the pace " in (
        "\n".join(lines)
    )
    page = _fleet_report.render_html(fleet)
    assert '<td data-sort="1.3">1.3 d (inodes)</td>' in page


@pytest.mark.parametrize(
    "previous",
    [
        None,
        {"generated": "not a time", "hosts": []},
        {"generated": "2026-12-02T12:00:00Z", "hosts": "nonsense"},
        # The same time (a second run in the same second): no pace to tell.
        "same-time",
    ],
)
def test_no_trend_without_a_usable_previous_run(previous):
    now = _fleet_report.build_fleet(FLEET, "2026-12-02T12:00:00Z")
    if previous == "same-time":
        previous = _previous_run(now, "2026-12-02T12:00:00Z", 4, 90)
    fleet = _fleet_report.build_fleet(FLEET, "2026-12-02T12:00:00Z", previous)
    assert all(h["trend"] is None for h in fleet["hosts"])


def test_usage_that_shrank_is_not_filling():
    now = _fleet_report.build_fleet(FLEET, "2026-12-02T12:00:00Z")
    previous = _previous_run(now, "2026-12-01T12:00:00Z", 50, 99)
    fleet = _fleet_report.build_fleet(FLEET, "2026-12-02T12:00:00Z", previous)
    [full] = [h for h in fleet["hosts"] if h["host"] == "full"]
    assert full["trend"]["bytes"] == {"per_day": -40.0, "days_until_full": None}
    assert '<td data-sort="">not filling</td>' in _fleet_report.render_html(fleet)


def test_a_run_soon_after_keeps_the_pace_against_the_older_run():
    first = _fleet_report.build_fleet(FLEET, "2026-12-02T12:00:00Z")
    day_before = _previous_run(first, "2026-12-01T12:00:00Z", 4, 93)
    second = _fleet_report.build_fleet(FLEET, "2026-12-02T12:00:00Z", day_before)
    # Ten minutes later, with the second run's fleet.json as the previous one: too soon to
    # tell a pace from, so the day-old run stays the baseline.
    again = json.loads(_fleet_report.render_json(second))
    third = _fleet_report.build_fleet(FLEET, "2026-12-02T12:10:00Z", again)
    assert third["previous"] == "2026-12-01T12:00:00Z"
    [full] = [h for h in third["hosts"] if h["host"] == "full"]
    assert full["trend"]["inodes"] == {"per_day": 3.0, "days_until_full": 1.3}
    assert full["trend"]["days"] == pytest.approx(1.007, abs=0.001)


def test_runs_less_than_an_hour_apart_give_no_pace_but_keep_the_earlier_run():
    first = _fleet_report.build_fleet(FLEET, "2026-12-02T12:00:00Z")
    soon = _fleet_report.build_fleet(
        FLEET, "2026-12-02T12:30:00Z", json.loads(_fleet_report.render_json(first))
    )
    assert all(h["trend"] is None for h in soon["hosts"]) and soon["previous"] is None
    assert soon["baseline"]["generated"] == "2026-12-02T12:00:00Z"
    later = _fleet_report.build_fleet(
        FLEET, "2026-12-02T12:45:00Z", json.loads(_fleet_report.render_json(soon))
    )
    # Still under an hour from the first run: nothing yet; the first run is still kept.
    assert later["previous"] is None
    assert later["baseline"]["generated"] == "2026-12-02T12:00:00Z"


@pytest.mark.parametrize(
    "value, shown",
    [
        (None, "?"),
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (512_000, "512kB"),
        (1_234_567, "1.23MB"),
        (999_600, "1MB"),
        (2_500_000_000, "2.5GB"),
    ],
)
def test_sizes_read_as_docker_system_df_shows_them(value, shown):
    assert _fleet_report.size_text(value) == shown


def test_host_markdown_names_who_fills_the_disk():
    result = _result()
    result["support"] = _support()
    result["disk_users"] = {
        "checked": True,
        "problem": None,
        "containers": [
            {
                "name": "web|1",
                "image": "app:2",
                "state": "running",
                "writable_bytes": 10,
                "log_bytes": 2_400_000_000,
            },
        ],
        "images": [
            {
                "image": "app:2",
                "unique_bytes": 80_000_000,
                "size_bytes": 180_000_000,
                "containers": 1,
            },
            {"image": "odd:1", "unique_bytes": None, "size_bytes": 5, "containers": None},
        ],
    }
    lines = _fleet_report.render_host_markdown("web1", result, "t").splitlines()
    start = lines.index("## Who fills the disk")
    assert lines[start + 2 : start + 5] == [
        "| container | image | state | writable layer | log |",
        "|---|---|---|---|---|",
        "| web\\|1 | app:2 | running | 10B | 2.4GB |",
    ]
    assert "| app:2 | 80MB | 180MB | 1 |" in lines
    assert "| odd:1 | ? | 5B | ? |" in lines
    # Where the engine was not asked, the report says why instead of an empty table.
    result["disk_users"] = {"checked": False, "problem": "not asked for (disk_users: 0)"}
    text = _fleet_report.render_host_markdown("web1", result, "t")
    assert "Not measured: not asked for (disk_users: 0)." in text.splitlines()
    # A host sending a size as a string gets the short report naming the key.
    result["disk_users"] = dict(
        checked=True,
        problem=None,
        images=[],
        containers=[dict(name="x", image=None, state=None, writable_bytes="10MB", log_bytes=0)],
    )
    assert "key disk_users.containers[0].writable_bytes must be an integer or null" in (
        _fleet_report.render_host_markdown("web1", result, "t").replace("\\", "")
    )


def test_host_markdown_of_an_engine_that_did_not_answer_has_no_disk_section():
    result = _result(state="stopped", checks=[_check("d_type", "skipped")])
    result["support"] = _support()
    result["disk_users"] = {"checked": False, "problem": "the Engine API did not answer"}
    text = _fleet_report.render_host_markdown("web1", result, "t")
    assert "## Who fills the disk" not in text
    assert "Docker: stopped (no engine)" in text.splitlines()


def test_host_markdown_says_what_reclaim_would_free():
    result = _result()
    result["support"] = _support()
    result["reclaim"] = {
        "checked": True,
        "problem": None,
        "targets": {"free_bytes_percent": 10.0, "free_inodes_percent": 20.0},
        "reached": False,
        "removed_objects": 3,
        "freed": {"data_root": {"bytes": 2_500_000, "inodes": 900}},
        "steps": [
            {"step": "dangling_images", "objects": 2, "bytes": 2_000_000, "inodes": 600},
            {"step": "stopped_containers", "objects": 1, "bytes": 500_000, "inodes": 300},
        ],
        "next_step": "container_logs",
    }
    lines = _fleet_report.render_host_markdown("web1", result, "t").splitlines()
    start = lines.index("## What reclaim would free")
    assert "20.0% free inodes" in lines[start + 2]
    assert "3 objects" in lines[start + 2] and "the next step would be container_logs" in (
        lines[start + 2].replace("\\", "")
    )
    assert "| dangling\\_images | 2 | 2MB | 600 |" in lines or (
        "| dangling_images | 2 | 2MB | 600 |" in lines
    )
    # Where reclaim was not needed, there is no section.
    result["reclaim"] = {"checked": False, "problem": "not needed"}
    assert "## What reclaim would free" not in _fleet_report.render_host_markdown("web1", result)
    # A step's objects sent as text gets the short report naming the key.
    result["reclaim"] = dict(checked=True, problem=None, steps=[dict(step="x", objects="2",
                             bytes=0, inodes=0)])  # fmt: skip
    assert "key reclaim.steps[0].objects must be an integer" in (
        _fleet_report.render_host_markdown("web1", result, "t").replace("\\", "")
    )
