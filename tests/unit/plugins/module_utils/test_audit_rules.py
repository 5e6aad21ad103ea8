"""Which paths the audit rules watch: auditctl -l's listing and rule files alike."""

from __future__ import annotations

import os

from ansible_collections.dockerhost.storage.plugins.module_utils._audit_rules import (
    audit_rules,
    covered_by,
    judge,
    targets,
    watches,
)

# auditctl -l as auditd 3.0 lists file and directory watches, and a syscall rule on a path.
AUDITCTL = """\
-w /usr/bin/dockerd -p rwxa -k docker
-w /var/lib/docker -p rwxa -k docker
-a always,exit -F arch=b64 -S all -F dir=/etc/docker -F perm=rwxa -F key=docker
-a always,exit -F arch=b64 -S all -F path=/run/containerd/containerd.sock -F perm=rwxa
"""


def test_watches_reads_w_dir_and_path_rules():
    assert watches(AUDITCTL) == [
        ("/usr/bin/dockerd", None),
        ("/var/lib/docker", None),
        ("/etc/docker", True),
        ("/run/containerd/containerd.sock", False),
    ]
    assert watches("# -w /etc/docker\n\nNo rules\n") == []


def test_a_recursive_rule_covers_below_it_an_exact_one_only_itself():
    rules = [["/var/lib/docker", True], ["/run/containerd/containerd.sock", False]]
    assert covered_by("/var/lib/docker/overlay2", rules) == "/var/lib/docker"
    assert covered_by("/var/lib/dockerx", rules) is None
    assert covered_by("/srv/docker", rules) is None
    assert covered_by("/run/containerd", rules) is None
    # A path that is a link to a watched file is covered by the file's rule.
    assert (
        covered_by(
            "/var/run/containerd/containerd.sock",
            rules,
            real_path=("/run/containerd/containerd.sock"),
        )
        == "/run/containerd/containerd.sock"
    )


def test_rule_files_under_a_host_tree_and_a_w_on_a_directory_is_recursive(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "etc", "audit", "rules.d"))
    os.makedirs(os.path.join(root, "var", "lib", "docker"))
    with open(os.path.join(root, "etc", "audit", "rules.d", "docker.rules"), "w") as handle:
        handle.write("-w /var/lib/docker -p rwxa -k docker\n-w /etc/docker/daemon.json -k d\n")
    found = audit_rules(root)
    assert found["source"] == "files"
    assert found["files"] == [os.path.join(root, "etc", "audit", "rules.d", "docker.rules")]
    # /var/lib/docker is a directory in the tree: recursive; daemon.json is not there: exact.
    assert found["rules"] == [["/var/lib/docker", True], ["/etc/docker/daemon.json", False]]
    assert audit_rules(str(tmp_path / "empty")) == {"source": None, "files": [], "rules": []}


def test_targets_are_found_where_the_host_keeps_them(tmp_path):
    root = str(tmp_path)
    for path in ("usr/sbin/dockerd", "usr/bin/runc", "etc/default/docker"):
        os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
        open(os.path.join(root, path), "w").close()
    data_root = tmp_path / "live-data-root"
    data_root.mkdir()
    found = targets(
        root,
        {"docker_service": "/lib/systemd/system/docker.service", "docker_socket": None},
        {"data_root": str(data_root), "daemon_json": str(tmp_path / "absent.json")},
    )
    assert found["dockerd"] == {"path": "/usr/sbin/dockerd", "exists": True}
    assert found["runc"] == {"path": "/usr/bin/runc", "exists": True}
    assert found["containerd"] == {"path": None, "exists": False}
    assert found["default_docker"] == {"path": "/etc/default/docker", "exists": True}
    assert found["data_root"] == {"path": str(data_root), "exists": True}
    assert found["daemon_json"]["exists"] is False
    judged = judge(found, [["/usr/sbin", True]], root)
    assert judged["dockerd"]["covered_by"] == "/usr/sbin"
    assert judged["runc"]["covered_by"] is None
    assert judged["daemon_json"]["covered_by"] is None
