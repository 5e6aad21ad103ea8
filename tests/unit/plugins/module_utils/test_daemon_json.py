import os
import re

import pytest
from daemon_json_corpus import CASES, bad_file, bad_files, read_bad_file

from ansible_collections.dockerhost.storage.plugins.module_utils._daemon_json import (
    MAX_NESTING,
    DaemonJsonError,
    mode_problems,
    parse_daemon_json,
    parse_daemon_json_strict,
    read_daemon_json,
    storage_settings,
)


def test_missing_file_is_empty_config(tmp_path):
    assert read_daemon_json(str(tmp_path / "daemon.json")) == {}


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text('{\n  "storage-driver": "overlay2",\n}\n')
    with pytest.raises(DaemonJsonError, match=r"daemon.json is not valid JSON at line 3"):
        read_daemon_json(str(path))


def test_top_level_must_be_an_object():
    with pytest.raises(
        DaemonJsonError, match=r"must hold a JSON object \(\{...\}\), found a JSON array"
    ):
        parse_daemon_json('["overlay2"]', "/etc/docker/daemon.json")


def test_empty_file_is_empty_config():
    assert parse_daemon_json("  \n") == {}


def test_storage_settings_fold_legacy_graph_and_features():
    settings = storage_settings(
        {
            "graph": "/srv/docker",
            "storage-opts": ["overlay2.size=10G"],
            "features": {"containerd-snapshotter": False},
        }
    )
    assert settings == {
        "storage_driver": None,
        "storage_opts": ["overlay2.size=10G"],
        "data_root": "/srv/docker",
        "containerd_snapshotter": False,
        "userns_remap": None,
    }
    assert storage_settings({"data-root": "/a", "graph": "/b"})["data_root"] == "/a"


@pytest.mark.parametrize(
    "config, key",
    [({"data-root": 5}, "data-root"), ({"storage-opts": "overlay2.size=1G"}, "storage-opts")],
)
def test_wrong_types_are_named(config, key):
    with pytest.raises(DaemonJsonError, match="daemon.json key %s must be a" % key):
        storage_settings(config)


@pytest.mark.parametrize(
    "config, named",
    [
        ({"features": {"containerd-snapshotter": "true"}}, "features.containerd-snapshotter"),
        ({"features": ["containerd-snapshotter"]}, "features must be an object"),
    ],
)
def test_a_features_setting_every_engine_refuses_is_named(config, named):
    # dockerd 20.10, 26.1 and 28.5 all refuse a quoted "true" (a Go bool); 20.10 has no
    # --validate to catch it before a restart.
    with pytest.raises(DaemonJsonError, match=named):
        storage_settings(config)


def test_every_bad_file_of_the_corpus_says_how_it_must_be_refused():
    assert bad_files() == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_file_is_refused_for_rewriting_naming_the_file_and_the_problem(name):
    path = "/etc/docker/daemon.json"
    with pytest.raises(DaemonJsonError) as refused:
        parse_daemon_json_strict(read_bad_file(name), path)
    message = str(refused.value)
    assert message.startswith(path + " ")
    for phrase in CASES[name].phrases:
        assert phrase in message


@pytest.mark.parametrize("name", sorted(n for n in CASES if CASES[n].read_refuses))
def test_bad_file_dockerd_cannot_read_as_written_is_refused_when_read(name):
    with pytest.raises(DaemonJsonError) as refused:
        read_daemon_json(bad_file(name))
    message = str(refused.value)
    assert message.startswith(bad_file(name) + " ")
    for phrase in CASES[name].phrases:
        assert phrase in message


def test_empty_file_and_repeated_keys_read_as_dockerd_reads_them():
    assert sorted(n for n in CASES if not CASES[n].read_refuses) == [
        "blank.json",
        "duplicate-key.json",
        "duplicate-nested-key.json",
        "empty.json",
    ]
    assert read_daemon_json(bad_file("empty.json")) == {}
    assert read_daemon_json(bad_file("blank.json")) == {}
    assert read_daemon_json(bad_file("duplicate-key.json")) == {"storage-driver": "overlay2"}
    assert read_daemon_json(bad_file("duplicate-nested-key.json")) == {
        "log-opts": {"max-size": "20m"}
    }


@pytest.mark.parametrize(
    "parse", [parse_daemon_json_strict, lambda raw: parse_daemon_json(raw.decode())]
)
def test_a_hundred_thousand_brackets_are_refused_without_exhausting_the_stack(parse):
    with pytest.raises(DaemonJsonError, match="more than 100 levels deep .at line 1 column 101"):
        parse(b"[" * 100000)


def test_what_dockerd_reads_is_accepted():
    nested = b'{"a": ' + b"[" * (MAX_NESTING - 1) + b"]" * (MAX_NESTING - 1) + b"}"
    value = parse_daemon_json_strict(nested)["a"]
    for _level in range(MAX_NESTING - 2):
        value = value[0]
    assert value == []
    accepted = parse_daemon_json_strict(
        b'{"labels": ["smile=\\ud83d\\ude00", "literal=\\\\ud800"], "max": 1.7e308, '
        b'"big": 100000000000000000000, "tiny": 1e-400}'
    )
    assert accepted == {
        "labels": ["smile=\U0001f600", "literal=\\ud800"],
        "max": 1.7e308,
        "big": 100000000000000000000,
        "tiny": 0.0,
    }


@pytest.mark.parametrize(
    "raw, escape",
    [
        (b'{"a": "\\udc00\\ud800"}', "\\udc00"),
        (b'{"a": "\\ud800x\\udc00"}', "\\ud800"),
        (b'{"\\ud800": 1}', "\\ud800"),
    ],
)
def test_lone_surrogate_escapes_are_named(raw, escape):
    with pytest.raises(DaemonJsonError, match="holds the escape %s" % re.escape(escape)):
        parse_daemon_json_strict(raw)


def test_closing_brackets_end_their_level():
    # Many arrays side by side are one level each, however many there are.
    text = '{"storage-opts": [%s"x"]}' % ("[], " * 200)
    assert parse_daemon_json_strict(text.encode())["storage-opts"][-1] == "x"
    # The object is the first level: 99 arrays in it make MAX_NESTING levels, one more is refused.
    deepest = parse_daemon_json_strict(('{"a": %s}' % ("[" * 99 + "]" * 99)).encode())["a"]
    for _level in range(98):
        deepest = deepest[0]
    assert deepest == [] and MAX_NESTING == 100
    with pytest.raises(DaemonJsonError, match="more than 100 levels deep .at line 1 column 106"):
        parse_daemon_json_strict(('{"a": %s}' % ("[" * 100 + "]" * 100)).encode())


@pytest.mark.parametrize(
    "text, kind",
    [("[]", "array"), ('"x"', "string"), ("true", "boolean"), ("null", "null"), ("1", "number")],
)
def test_a_file_that_is_not_an_object_names_what_it_holds(text, kind):
    with pytest.raises(DaemonJsonError) as error:
        parse_daemon_json_strict(text.encode(), "/etc/docker/daemon.json")
    assert str(error.value) == (
        "/etc/docker/daemon.json must hold a JSON object ({...}), found a JSON %s: fix the file"
        % kind
    )


@pytest.mark.parametrize(
    "number, shown",
    [
        ("1e999", "1e999"),
        ("1" * 400, "1" * 20 + "..."),
        ("-" + "9" * 23 + "e999", "-" + "9" * 19 + "..."),
    ],
)
def test_a_number_beyond_a_float_is_named_and_shortened(number, shown):
    with pytest.raises(DaemonJsonError) as error:
        parse_daemon_json_strict(('{"a": "[{", "b": %s}' % number).encode(), "/d.json")
    assert str(error.value).startswith(
        "/d.json holds the number %s at line 1 column 18, beyond the range dockerd reads" % shown
    )


def test_mode_problems_name_a_loose_mode_and_a_foreign_owner(tmp_path):
    path = tmp_path / "daemon.json"
    assert mode_problems(str(path)) == []
    path.write_text("{}")
    os.chmod(str(path), 0o644)
    os.chown(str(path), 0, 0)
    assert mode_problems(str(path)) == []
    os.chown(str(path), 0, 50)
    os.chmod(str(path), 0o4664)
    assert mode_problems(str(path)) == [
        "%s has mode 4664, looser than 0644 (CIS Docker Benchmark 3.18): chmod 0644 it" % path,
        "%s is owned by 0:50, not root:root (CIS Docker Benchmark 3.17): chown root:root it" % path,
    ]
    os.chmod(str(path), 0o600)
    os.chown(str(path), 1000, 0)
    assert mode_problems(str(path)) == [
        "%s is owned by 1000:0, not root:root (CIS Docker Benchmark 3.17): chown root:root it"
        % path
    ]
