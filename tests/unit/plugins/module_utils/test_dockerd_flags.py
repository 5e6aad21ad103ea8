import os

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils._dockerd_flags import (
    conflicts_with_config,
    exec_start_lines,
    find_storage_flags,
    logical_lines,
    storage_flags_in_words,
    unit_files,
)

FIXTURES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "fixtures",
    "dockerd-flags",
)


def tree(name):
    return os.path.join(FIXTURES, name)


def summary(findings):
    return [(f["key"], f["flag"], f["value"], f["where"]) for f in findings]


@pytest.mark.parametrize(
    "words, expected",
    [
        (["--storage-driver=overlay2"], [("storage-driver", "--storage-driver", "overlay2")]),
        (["--storage-driver", "vfs"], [("storage-driver", "--storage-driver", "vfs")]),
        (["-s", "btrfs"], [("storage-driver", "-s", "btrfs")]),
        (["-s=zfs"], [("storage-driver", "-s", "zfs")]),
        (["-soverlay2"], [("storage-driver", "-s", "overlay2")]),
        (
            ["--storage-opt", "dm.basesize=20G", "--storage-opt=overlay2.size=1G"],
            [
                ("storage-opts", "--storage-opt", "dm.basesize=20G"),
                ("storage-opts", "--storage-opt", "overlay2.size=1G"),
            ],
        ),
        (
            ["-g", "/srv/a", "--graph=/srv/b"],
            [("data-root", "-g", "/srv/a"), ("data-root", "--graph", "/srv/b")],
        ),
        (["--data-root", "/srv/docker"], [("data-root", "--data-root", "/srv/docker")]),
        # Other flags and their values are not storage settings, even when they look alike.
        (["-H", "fd://", "--storage-driver-x=1", "--log-opt", "-s"], []),
        (["--dns", "192.0.2.1", "-D"], []),
    ],
)
def test_flag_forms(words, expected):
    assert storage_flags_in_words(words) == expected


def test_continuation_lines_are_joined_and_start_at_the_first_line():
    text = "[Service]\nExecStart=/usr/bin/dockerd \\\n  -s vfs \\\n  -H fd://\nTimeoutSec=0\n"
    assert [(number, line) for number, line, _segments in logical_lines(text)] == [
        (1, "[Service]"),
        (2, "ExecStart=/usr/bin/dockerd    -s vfs    -H fd://"),
        (5, "TimeoutSec=0"),
    ]


def test_debian_unit_uses_docker_opts_from_etc_default():
    found = find_storage_flags(tree("debian-default"))
    assert found["unit"] == "/lib/systemd/system/docker.service"
    assert summary(found["findings"]) == [
        ("storage-driver", "--storage-driver", "overlay2", "/etc/default/docker:8"),
        ("data-root", "-g", "/srv/docker", "/etc/default/docker:8"),
    ]
    assert {f["variable"] for f in found["findings"]} == {"DOCKER_OPTS"}


def test_drop_in_resets_exec_start_and_hides_lower_priority_drop_in_of_the_same_name():
    root = tree("drop-in-override")
    assert [shown for shown, _real in unit_files(root)] == [
        "/lib/systemd/system/docker.service",
        "/etc/systemd/system/docker.service.d/10-storage.conf",
        "/lib/systemd/system/docker.service.d/20-environment.conf",
    ]
    found = find_storage_flags(root)
    # The unit's "--storage-driver devicemapper" is reset by the empty ExecStart= of the
    # drop-in; the /run drop-in with vfs is hidden by the /etc one of the same name.
    assert summary(found["findings"]) == [
        ("storage-opts", "--storage-opt", "dm.basesize=20G", _drop_in(6)),
        ("storage-driver", "-s", "overlay2", _drop_in(7)),
        ("data-root", "--data-root", "/srv/docker", _drop_in(7)),
    ]


def _drop_in(line):
    return "/etc/systemd/system/docker.service.d/10-storage.conf:%d" % line


def test_sysconfig_variables_used_by_the_unit_count():
    found = find_storage_flags(tree("sysconfig"))
    assert summary(found["findings"]) == [
        ("storage-driver", "--storage-driver", "overlay2", "/etc/sysconfig/docker-storage:2"),
        ("storage-opts", "--storage-opt", "overlay2.size=10G", "/etc/sysconfig/docker-storage:2"),
    ]


def test_environment_file_the_unit_does_not_use_is_inactive():
    found = find_storage_flags(tree("upstream-unused-env"))
    assert found["findings"] == []
    assert summary(found["inactive"]) == [("storage-driver", "-s", "vfs", "/etc/default/docker:1")]


def test_without_a_unit_etc_default_docker_is_read_by_sysv_init():
    found = find_storage_flags(tree("sysv"))
    assert found["unit"] is None
    assert summary(found["findings"]) == [
        ("data-root", "--graph", "/data/docker", "/etc/default/docker:2"),
        ("storage-opts", "--storage-opt", "overlay2.size=5G", "/etc/default/docker:2"),
    ]


def test_empty_host_has_no_flags(tmp_path):
    assert find_storage_flags(str(tmp_path)) == {"findings": [], "inactive": [], "unit": None}


def test_exec_start_outside_service_section_is_ignored(tmp_path):
    unit = tmp_path / "docker.service"
    unit.write_text(
        "[Unit]\nExecStart=/usr/bin/dockerd -s vfs\n[Service]\nExecStart=-/usr/bin/dockerd\n"
    )
    assert [line[:3] for line in exec_start_lines([("/x/docker.service", str(unit))])] == [
        ("/x/docker.service", 4, "/usr/bin/dockerd")
    ]


def test_conflict_names_key_file_line_and_both_values():
    findings = find_storage_flags(tree("drop-in-override"))["findings"]
    messages = conflicts_with_config(
        findings, {"storage-driver": "vfs", "log-driver": "journald", "storage-opts": []}
    )
    assert messages == [
        'storage-driver is set in daemon.json ("vfs") and as the dockerd flag -s overlay2 in '
        "/etc/systemd/system/docker.service.d/10-storage.conf:7; dockerd refuses to start when "
        "a directive is given both ways: remove one of them"
    ]


def test_each_flag_is_named_by_its_own_line_in_a_continued_command(tmp_path):
    unit = tmp_path / "etc" / "systemd" / "system" / "docker.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(
        "[Service]\n"
        "ExecStart=/usr/bin/dockerd \\\n"
        "  -s \\\n"
        "  overlay2 \\\n"
        "  --storage-opt=overlay2.size=1G --data-root /srv/docker\n"
    )
    assert [f["line"] for f in find_storage_flags(str(tmp_path))["findings"]] == [3, 5, 5]


def test_deprecated_graph_flag_is_a_conflict_of_its_own_kind():
    findings = find_storage_flags(tree("debian-default"))["findings"]
    messages = conflicts_with_config(findings, {"data-root": "/var/lib/docker"})
    assert messages == [
        'data-root is set in daemon.json ("/var/lib/docker") and as the dockerd flag -g '
        "/srv/docker in /etc/default/docker:8; dockerd 20.10 ignores the deprecated flag in "
        "favour of the file, and 23.0 and later refuse to start with it: remove the flag"
    ]
