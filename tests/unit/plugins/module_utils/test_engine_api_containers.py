import json
import os
import socket
import time

import pytest
from recorded_engine import serve_engine

from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    ContainerEngineClient,
    EngineError,
    EngineNotFound,
    EngineUnavailable,
)


@pytest.fixture
def engine(tmp_path):
    answers = {
        "/containers/json": (200, json.dumps([{"Id": "abc", "Names": ["/web"]}])),
        "/containers/abc/json": (200, json.dumps({"Id": "abc", "GraphDriver": {}})),
        "/containers/broken/json": (
            500,
            json.dumps({"message": "readlink /var/lib/docker/overlay2/l/X: no such file"}),
        ),
        "/images/busybox/json": (404, json.dumps({"message": "No such image"})),
    }
    with serve_engine(os.path.join(str(tmp_path), "engine.sock"), answers) as docker_host:
        yield ContainerEngineClient(docker_host)


def test_lists_and_inspects_containers(engine):
    assert engine.containers() == [{"Id": "abc", "Names": ["/web"]}]
    assert engine.inspect_container("abc")["Id"] == "abc"


def test_a_404_is_engine_not_found_with_the_engine_message(engine):
    with pytest.raises(EngineNotFound) as caught:
        engine.inspect_image("busybox")
    assert caught.value.engine_message == "No such image"


def test_an_error_status_carries_the_engine_message(engine):
    with pytest.raises(EngineError, match="answered HTTP 500") as caught:
        engine.inspect_container("broken")
    assert caught.value.engine_message.startswith("readlink /var/lib/docker/overlay2/l/X")


def test_an_engine_that_never_answers_times_out_with_a_sentence(tmp_path):
    path = os.path.join(str(tmp_path), "silent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    try:
        started = time.monotonic()
        with pytest.raises(
            EngineUnavailable, match=r"did not answer GET /containers/json\?all=1 within 0.5 s"
        ):
            ContainerEngineClient("unix://" + path, timeout=0.5).containers()
        assert time.monotonic() - started < 5
    finally:
        server.close()


def test_a_missing_socket_is_named(tmp_path):
    path = os.path.join(str(tmp_path), "none.sock")
    with pytest.raises(EngineUnavailable, match="no Docker engine socket at %s" % path):
        ContainerEngineClient("unix://" + path).containers()
