import os

import pytest
from recorded_engine import recorded_answers, serve_engine

from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    EngineClient,
    EngineUnavailable,
    dockerd_binary_version,
    parse_dockerd_version_output,
    socket_path_from_docker_host,
)


@pytest.fixture
def engine_socket(tmp_path):
    answers = recorded_answers("24.0")
    answers["/broken"] = (200, "<html>not json</html>")
    with serve_engine(os.path.join(str(tmp_path), "engine.sock"), answers) as docker_host:
        yield docker_host[len("unix://") :]


def test_client_reads_version_and_info_over_a_unix_socket(engine_socket):
    client = EngineClient("unix://" + engine_socket)
    assert client.version()["Version"] == "24.0.7"
    assert client.info()["Driver"] == "overlay2"


def test_http_error_is_named(engine_socket):
    with pytest.raises(EngineUnavailable, match="answered HTTP 404"):
        EngineClient("unix://" + engine_socket).get("/nope")


def test_non_json_answer_is_named(engine_socket):
    with pytest.raises(EngineUnavailable, match="did not answer JSON"):
        EngineClient("unix://" + engine_socket).get("/broken")


def test_missing_socket_is_named(tmp_path):
    with pytest.raises(EngineUnavailable, match="no Docker engine socket at"):
        EngineClient("unix://%s/none.sock" % tmp_path).version()


@pytest.mark.parametrize(
    "docker_host", ["tcp://127.0.0.1:2375", "unix://relative.sock", "/var/run/docker.sock"]
)
def test_only_absolute_unix_sockets(docker_host):
    with pytest.raises(ValueError, match="docker_host must be a unix socket"):
        socket_path_from_docker_host(docker_host)


@pytest.mark.parametrize(
    "output, version",
    [
        ("Docker version 20.10.24+dfsg1, build 5d6db84\n", "20.10.24+dfsg1"),
        ("Docker version 27.5.1, build 4c9b3b0\n", "27.5.1"),
        ("dockerd: command not found", None),
    ],
)
def test_parse_dockerd_version_output(output, version):
    assert parse_dockerd_version_output(output) == version


def test_dockerd_version_from_the_binary(tmp_path):
    dockerd = tmp_path / "dockerd"
    dockerd.write_text("#!/bin/sh\necho 'Docker version 24.0.7, build 311b9ff'\n")
    dockerd.chmod(0o755)
    assert dockerd_binary_version([str(tmp_path)]) == ("24.0.7", str(dockerd), None)


def test_no_dockerd_says_where_it_looked(tmp_path):
    version, binary, problem = dockerd_binary_version([str(tmp_path)])
    assert (version, binary) == (None, None)
    assert problem == "dockerd is not installed (not found in %s)" % tmp_path
