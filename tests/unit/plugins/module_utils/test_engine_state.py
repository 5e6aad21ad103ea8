import json
import os

import pytest
from recorded_engine import recorded_answers, serve_engine

from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    EngineUnavailable,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_state import (
    EngineStateError,
    detect_engine,
    engine_info_from_api,
    resolve_data_root,
    uses_containerd_store,
)


@pytest.mark.parametrize(
    "release, containerd_store", [("23.0", False), ("24.0", False), ("29.0", True)]
)
def test_recorded_engines_are_read_over_the_socket(tmp_path, release, containerd_store):
    answers = recorded_answers(release)
    with serve_engine(os.path.join(str(tmp_path), "engine.sock"), answers) as docker_host:
        info, version, client = detect_engine(docker_host)
    assert info["version_source"] == "api"
    assert version[:2] == tuple(int(part) for part in release.split("."))
    assert info["data_root"] == json.loads(answers["/info"][1])["DockerRootDir"]
    assert client is not None
    assert uses_containerd_store(info) is containerd_store


def test_no_engine_falls_back_and_says_why(tmp_path):
    info, version, client = detect_engine("unix://%s/absent.sock" % tmp_path, "20.10")
    assert client is None
    assert info["version_source"] == "option"
    assert version[:2] == (20, 10)
    assert "no Docker engine socket at %s/absent.sock" % tmp_path in info["problem"]


@pytest.mark.parametrize(
    "docker_host, given, message",
    [
        ("tcp://127.0.0.1:2375", None, "docker_host must be a unix socket"),
        ("unix:///nonexistent.sock", "twenty", "engine_version: "),
    ],
)
def test_bad_options_are_named(docker_host, given, message):
    with pytest.raises(EngineStateError, match=message):
        detect_engine(docker_host, given)


def test_api_answers_of_the_wrong_type_are_named():
    with pytest.raises(EngineUnavailable, match="gave DockerRootDir as 42"):
        engine_info_from_api({"Version": "24.0.7"}, {"DockerRootDir": 42}, "/run/d.sock")


@pytest.mark.parametrize(
    "given, engine_root, config_root, expected",
    [
        ("/srv/docker/", "/var/lib/docker", None, ("/srv/docker", "option")),
        (None, "/data/docker", "/ignored", ("/data/docker", "engine")),
        (None, None, "/srv/d", ("/srv/d", "daemon.json")),
        (None, None, None, ("/var/lib/docker", "default")),
    ],
)
def test_data_root_precedence(given, engine_root, config_root, expected):
    assert (
        resolve_data_root(given, {"data_root": engine_root}, {"data_root": config_root}) == expected
    )


@pytest.mark.parametrize(
    "given, config_root, message",
    [
        ("docker", None, "path must be absolute, got 'docker'"),
        ("/a\0b", None, "must not contain a NUL byte"),
        (None, "relative/root", "the data-root from daemon.json is 'relative/root'"),
    ],
)
def test_bad_data_roots_are_named(given, config_root, message):
    with pytest.raises(EngineStateError, match=message):
        resolve_data_root(given, {"data_root": None}, {"data_root": config_root})


@pytest.mark.parametrize("given", ["20.1", "19.3", "v18.9.1"])
def test_unquoted_yaml_versions_are_named(given):
    with pytest.raises(EngineStateError, match='quote it, engine_version: "20.10"'):
        detect_engine("unix:///nonexistent.sock", given)


@pytest.mark.parametrize("given", ["20.10", "17.03.2", "23.0", "24.0.7", "29.1"])
def test_real_release_names_are_accepted(given):
    info, _version, _client = detect_engine("unix:///nonexistent.sock", given)
    assert info["version"] == given
