"""How audit_report reads the hosts' results from hostvars: as they are, and templated only
where ansible keeps something that is not data (a failed or unreachable task's error)."""

from __future__ import annotations

from ansible_collections.dockerhost.storage.plugins.plugin_utils import _audit_report


class ErrorObject:
    """Stands for ansible's own error summary in an unreachable host's registered result."""


class FakeHostVars:
    """HostVars' two ways in: ``raw_get`` (variables as they are) and ``[host]`` (templated,
    which turns ansible's objects into data)."""

    def __init__(self, raw, templated):
        self.raw, self.templated, self.templated_reads = raw, templated, []

    def __contains__(self, host):
        return host in self.raw

    def raw_get(self, host):
        return self.raw[host]

    def __getitem__(self, host):
        self.templated_reads.append(host)
        return self.templated[host]


def test_results_are_read_as_they_are_and_templated_only_where_they_are_not_data():
    ok = {"checks": [], "docker": {"state": "absent"}}
    raw = {
        "web1": {"r": ok, "ansible_facts": {"fqdn": "web1.example.org", "other": 1}},
        "gone": {"r": {"unreachable": True, "exception": ErrorObject()}},
        "new": {},
    }
    templated = {"gone": {"r": {"unreachable": True, "exception": "ssh: connect refused"}}}
    hostvars = FakeHostVars(raw, templated)
    items = _audit_report.results_from_hostvars(["web1", "gone", "new", "absent"], hostvars, "r")
    assert items == [
        {"host": "web1", "result": ok, "facts": {"fqdn": "web1.example.org"}},
        {
            "host": "gone",
            "result": {"unreachable": True, "exception": "ssh: connect refused"},
            "facts": None,
        },
        {"host": "new", "result": None, "facts": None},
        {"host": "absent", "result": None, "facts": None},
    ]
    assert hostvars.templated_reads == ["gone"]


def test_plain_hostvars_without_raw_get_are_read_directly():
    hostvars = {"web1": {"r": {"checks": []}}}
    [item] = _audit_report.results_from_hostvars(["web1"], hostvars, "r")
    assert item["result"] == {"checks": []}
