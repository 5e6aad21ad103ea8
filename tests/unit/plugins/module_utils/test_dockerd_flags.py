import os

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils._dockerd_flags import (
    SYSTEMD_VIEW,
    config_file_problem,
    conflicts_with_config,
    exec_start_lines,
    find_storage_flags,
    logical_lines,
    parse_systemctl_show,
    split_words,
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
        # Boolean letters grouped in front of the one that takes a value, as pflag reads them.
        (["-Ds", "vfs"], [("storage-driver", "-s", "vfs")]),
        (["-Ds=vfs"], [("storage-driver", "-s", "vfs")]),
        (["-Dsvfs"], [("storage-driver", "-s", "vfs")]),
        (["-vDg", "/srv/docker"], [("data-root", "-g", "/srv/docker")]),
        (["-D", "-s", "overlay2"], [("storage-driver", "-s", "overlay2")]),
        # -s takes the rest of its word: "D" is its value, not the debug flag.
        (["-sD"], [("storage-driver", "-s", "D")]),
        # A flag that takes a value takes the next word, whatever it looks like.
        (["-H", "-s", "vfs"], []),
        (["--storage-driver", "-D"], [("storage-driver", "--storage-driver", "-D")]),
        # A boolean long flag does not; an unknown one takes a word that is not a flag.
        (["--debug", "-s", "vfs"], [("storage-driver", "-s", "vfs")]),
        (["--label", "site=a", "-s", "vfs"], [("storage-driver", "-s", "vfs")]),
        (
            ["--some-new-switch", "--storage-driver=vfs"],
            [("storage-driver", "--storage-driver", "vfs")],
        ),
        # Unknown letters stop the group (dockerd refuses them); "--" ends the flags.
        (["-Xs", "vfs"], []),
        (["--", "-s", "vfs"], []),
        # The configuration file is not a storage setting.
        (["--config-file", "/etc/docker/other.json"], []),
        # userns-remap moves the store into <data-root>/<uid>.<gid>.
        (["--userns-remap=default"], [("userns-remap", "--userns-remap", "default")]),
        (["--userns-remap", "app:app"], [("userns-remap", "--userns-remap", "app:app")]),
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
    assert find_storage_flags(str(tmp_path)) == {
        "findings": [],
        "inactive": [],
        "unit": None,
        "config_file": None,
        "source": "files",
    }


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


def test_systemd_quoting_rules_split_words():
    assert split_words("""-H fd:// --label "site=a b" 'x y'z \\s\\"q""") == [
        "-H",
        "fd://",
        "--label",
        "site=a b",
        "x yz",
        ' "q',
    ]
    assert split_words('--label "open') is None


def test_environment_in_a_drop_in_reaches_exec_start():
    found = find_storage_flags(tree("environment-drop-in"))
    where = "/etc/systemd/system/docker.service.d/storage.conf:3"
    assert summary(found["findings"]) == [
        ("storage-driver", "-s", "vfs", where),
        ("data-root", "--data-root", "/srv/docker", where),
    ]
    assert {f["variable"] for f in found["findings"]} == {"DOCKER_OPTS"}
    assert found["inactive"] == [] and found["config_file"] is None
    assert found["source"] == "files"


def test_environment_file_of_a_drop_in_and_the_config_file_it_names():
    found = find_storage_flags(tree("environment-file-elsewhere"))
    assert summary(found["findings"]) == [
        ("storage-driver", "-s", "overlay2", "/etc/docker/dockerd.env:2"),
        ("storage-opts", "--storage-opt", "overlay2.size=10G", "/etc/docker/dockerd.env:3"),
    ]
    config_file = found["config_file"]
    assert (config_file["value"], config_file["where"], config_file["variable"]) == (
        "/etc/docker/storage.json",
        "/etc/docker/dockerd.env:4",
        "CONFIG",
    )
    # The unit does not load /etc/default/docker: its DOCKER_OPTS does not reach dockerd.
    assert summary(found["inactive"]) == [("storage-driver", "-s", "vfs", "/etc/default/docker:1")]


def host(root, files):
    for path, text in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return str(root)


UNIT = "/lib/systemd/system/docker.service"
DROP_IN = "/etc/systemd/system/docker.service.d/override.conf"


def test_variables_expand_as_systemd_expands_them(tmp_path):
    root = host(
        tmp_path,
        {
            UNIT: "[Service]\nEnvironment=DRIVER=vfs\nExecStart=/usr/bin/dockerd -H fd://\n",
            DROP_IN: (
                "[Service]\n"
                'Environment="OPTS=-g /srv/docker" "ROOT=/srv/a b"\n'
                "ExecStart=\n"
                "ExecStart=/usr/bin/dockerd --storage-driver=${DRIVER} $OPTS $UNSET"
                " --data-root ${ROOT} -g /srv/$$x\n"
            ),
        },
    )
    findings = find_storage_flags(root)["findings"]
    assert [(f["key"], f["value"], f["variable"]) for f in findings] == [
        # ${VAR} inside a word: the flag stands in ExecStart, its value comes from DRIVER.
        ("storage-driver", "vfs", "DRIVER"),
        # $VAR as a word of its own: split into words.
        ("data-root", "/srv/docker", "OPTS"),
        # ${VAR} as a whole word: one word, blanks kept.
        ("data-root", "/srv/a b", None),
        # $$ is a dollar sign.
        ("data-root", "/srv/$x", None),
    ]
    assert [f["where"] for f in findings] == [
        DROP_IN + ":4",
        DROP_IN + ":2",
        DROP_IN + ":4",
        DROP_IN + ":4",
    ]


def test_colon_prefix_turns_expansion_off(tmp_path):
    root = host(
        tmp_path,
        {UNIT: "[Service]\nEnvironment=OPTS=-svfs\nExecStart=:/usr/bin/dockerd $OPTS\n"},
    )
    found = find_storage_flags(root)
    assert found["findings"] == []
    assert summary(found["inactive"]) == [("storage-driver", "-s", "vfs", UNIT + ":2")]


def test_environment_files_override_environment_and_resets_apply(tmp_path):
    root = host(
        tmp_path,
        {
            UNIT: (
                "[Service]\n"
                "Environment=OPTS=-sdevicemapper\n"
                "EnvironmentFile=/etc/docker/first.env\n"
                "ExecStart=/usr/bin/dockerd $OPTS\n"
            ),
            DROP_IN: (
                "[Service]\n"
                "Environment=\n"
                "Environment=OPTS=-saufs\n"
                "EnvironmentFile=-/etc/docker/later*.env\n"
            ),
            "/etc/docker/first.env": "OPTS='-s overlay'\n",
            "/etc/docker/later-1.env": "OPTS=-s btrfs\n",
            "/etc/docker/later-2.env": "# the one in force\nOPTS=--storage-driver zfs\n",
        },
    )
    found = find_storage_flags(root)
    assert summary(found["findings"]) == [
        ("storage-driver", "--storage-driver", "zfs", "/etc/docker/later-2.env:2")
    ]
    # The Environment= before the reset is gone; the rest are overridden.
    assert summary(found["inactive"]) == [
        ("storage-driver", "-s", "aufs", DROP_IN + ":3"),
        ("storage-driver", "-s", "overlay", "/etc/docker/first.env:1"),
        ("storage-driver", "-s", "btrfs", "/etc/docker/later-1.env:1"),
    ]


def read_fixture(name):
    with open(os.path.join(FIXTURES, "systemctl-show", name), encoding="utf-8") as handle:
        return handle.read()


def test_systemctl_show_is_parsed():
    shown = parse_systemctl_show(read_fixture("stale-drop-in.txt"))
    assert shown["load_state"] == "loaded"
    assert shown["fragment_path"] == "/lib/systemd/system/docker.service"
    assert shown["drop_in_paths"] == ["/etc/systemd/system/docker.service.d/storage.conf"]
    assert shown["exec_start"] == [
        [
            "/usr/sbin/dockerd",
            "-H",
            "fd://",
            "--containerd=/run/containerd/containerd.sock",
            "$DOCKER_OPTS",
        ]
    ]
    assert shown["environment"] == [("DOCKER_OPTS", "--storage-driver=vfs --data-root=/srv/docker")]
    assert shown["environment_files"] == ["/etc/default/docker"]
    # Older systemd versions print the assignments unquoted.
    unquoted = parse_systemctl_show("Environment=A=1 DOCKER_OPTS=-s vfs -g /srv/docker B=2\n")
    assert unquoted["environment"] == [
        ("A", "1"),
        ("DOCKER_OPTS", "-s vfs -g /srv/docker"),
        ("B", "2"),
    ]


def test_what_systemd_loaded_wins_over_a_unit_changed_on_disk():
    # The drop-in on disk says overlay2; systemd has not reloaded it and starts dockerd with vfs.
    found = find_storage_flags(tree("systemd-loaded"), read_fixture("stale-drop-in.txt"))
    assert found["source"] == "systemd"
    assert found["unit"] == "/lib/systemd/system/docker.service"
    assert summary(found["findings"]) == [
        ("storage-driver", "--storage-driver", "vfs", SYSTEMD_VIEW),
        ("data-root", "--data-root", "/srv/docker", SYSTEMD_VIEW),
    ]
    assert [(f["file"], f["line"]) for f in found["findings"]] == [(None, None), (None, None)]


def test_what_systemd_loaded_is_placed_in_the_file_that_says_it():
    found = find_storage_flags(tree("systemd-loaded"), read_fixture("current-drop-in.txt"))
    assert summary(found["findings"]) == [
        (
            "storage-driver",
            "--storage-driver",
            "overlay2",
            "/etc/systemd/system/docker.service.d/storage.conf:2",
        )
    ]


def test_a_unit_systemd_does_not_know_is_read_from_the_files():
    found = find_storage_flags(tree("debian-default"), read_fixture("not-found.txt"))
    assert found["source"] == "files"
    assert [f["value"] for f in found["findings"]] == ["overlay2", "/srv/docker"]


def test_config_file_elsewhere_is_a_problem_naming_both_files(tmp_path):
    root = tree("environment-file-elsewhere")
    found = find_storage_flags(root)
    in_force = os.path.join(root, "etc/docker/storage.json")
    assert config_file_problem(found, "/etc/docker/daemon.json", root) == (
        "dockerd reads its configuration from /etc/docker/storage.json (--config-file "
        "/etc/docker/storage.json in /etc/docker/dockerd.env:4), not from "
        "/etc/docker/daemon.json, so a change to /etc/docker/daemon.json would have no "
        "effect: set path to %s, or remove the flag first" % in_force
    )
    assert config_file_problem(found, in_force, root) is None
    assert config_file_problem(find_storage_flags(tree("debian-default")), "/x.json") is None
    # A relative --config-file is read from dockerd's working directory, / under systemd.
    relative = host(
        tmp_path, {UNIT: "[Service]\nExecStart=/usr/bin/dockerd --config-file a.json\n"}
    )
    problem = config_file_problem(find_storage_flags(relative), "/etc/docker/daemon.json")
    assert problem.startswith("dockerd reads its configuration from /a.json (--config-file a.json")


def test_userns_remap_as_a_flag_and_in_daemon_json_is_a_conflict(tmp_path):
    unit = tmp_path / "etc" / "systemd" / "system" / "docker.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/usr/bin/dockerd --userns-remap=default\n")
    findings = find_storage_flags(str(tmp_path))["findings"]
    assert conflicts_with_config(findings, {"userns-remap": "dockremap"}) == [
        'userns-remap is set in daemon.json ("dockremap") and as the dockerd flag '
        "--userns-remap default in /etc/systemd/system/docker.service:2; dockerd refuses to "
        "start when a directive is given both ways: remove one of them"
    ]
