"""driver_support_info against engines this machine does not run (23, 24, 29).

The module talks to a unix socket that serves what those engines answered, and judges a real
filesystem on this machine: the engine's version decides the rules, the probe stays real.
"""

import os
import sys

import pytest
from ansible_module import run_module

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support")
)
from recorded_engine import recorded_answers, serve_engine  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(tmp_path):
    def serve(version):
        return serve_engine(
            os.path.join(str(tmp_path), "engine-%s.sock" % version), recorded_answers(version)
        )

    return serve


def test_engine_29_puts_a_fresh_data_root_on_the_containerd_store(make_loopfs, engine):
    fs = make_loopfs("ext4", size_mb=256)
    with engine("29.0") as docker_host:
        result = run_module(
            "driver_support_info", {"path": fs.mount_point + "/docker", "docker_host": docker_host}
        )
    assert result["engine"]["version"] == "29.0.1"
    assert result["engine"]["version_source"] == "api"
    assert result["engine"]["running_driver"] == "overlayfs"
    assert result["would_pick"]["driver"] == "overlayfs"
    assert result["would_pick"]["image_store"] == "containerd"
    assert result["recommended"] == "overlay2"


def test_upgrading_to_29_keeps_overlay2_state_on_the_graphdriver(
    make_loopfs, engine, start_dockerd, busybox_image, import_test_image
):
    fs = make_loopfs("ext4", size_mb=512)
    data_root = os.path.join(fs.mount_point, "docker")
    daemon = start_dockerd(data_root, storage_driver="overlay2")
    daemon.assert_started()
    import_test_image(daemon, busybox_image)
    daemon.stop()
    with engine("29.0") as docker_host:
        result = run_module("driver_support_info", {"path": data_root, "docker_host": docker_host})
    assert result["prior_drivers"] == ["overlay2"]
    assert result["would_pick"] == {
        "driver": "overlay2",
        "image_store": "graphdriver",
        "reason": "prior overlay2 state in %s wins over the priority list" % data_root,
        "warnings": [],
    }


def test_aufs_state_is_lost_on_engine_24_and_blocks_engine_23(make_loopfs, engine):
    fs = make_loopfs("ext4", size_mb=256)
    data_root = os.path.join(fs.mount_point, "docker")
    os.makedirs(os.path.join(data_root, "aufs", "diff", "3f1c9a"))
    with engine("24.0") as docker_host:
        v24 = run_module("driver_support_info", {"path": data_root, "docker_host": docker_host})
    assert v24["drivers"]["aufs"]["removed"] is True
    assert v24["would_pick"]["driver"] == "overlay2"
    assert (
        "aufs state in %s is ignored by Docker Engine 24.0" % data_root
        in v24["would_pick"]["warnings"][0]
    )
    with engine("23.0") as docker_host:
        v23 = run_module(
            "driver_support_info",
            {"path": data_root, "docker_host": docker_host, "required": "aufs"},
        )
    assert v23["failed"] is True
    assert "aufs cannot run on %s (ext4, Docker Engine 23.0)" % data_root in v23["msg"]
    assert v23["drivers"]["aufs"]["deprecated"] is True
    assert v23["would_pick"]["driver"] is None
    assert "deprecated aufs" in v23["would_pick"]["reason"]


def test_no_engine_answers_and_the_binary_version_is_used(tmp_path):
    result = run_module(
        "driver_support_info",
        {"path": str(tmp_path), "docker_host": "unix://%s/none.sock" % tmp_path},
    )
    assert result["engine"]["version_source"] == "binary"
    assert "no Docker engine socket at %s/none.sock" % tmp_path in result["engine"]["problem"]
    assert result["engine"]["version"].startswith("20.10.")


def test_engine_answers_of_the_wrong_shape_are_named_not_a_traceback(tmp_path):
    answers = {"/version": (200, "[]"), "/info": (200, "null")}
    with serve_engine(os.path.join(str(tmp_path), "odd.sock"), answers) as docker_host:
        result = run_module(
            "driver_support_info", {"path": str(tmp_path), "docker_host": docker_host}
        )
    assert not result.get("failed"), result.get("msg")
    assert "answered something other than a JSON object" in result["engine"]["problem"]


def test_relative_data_root_from_the_engine_is_refused(tmp_path):
    answers = recorded_answers("24.0")
    answers["/info"] = (200, '{"Driver": "overlay2", "DockerRootDir": "docker"}')
    with serve_engine(os.path.join(str(tmp_path), "rel.sock"), answers) as docker_host:
        result = run_module("driver_support_info", {"docker_host": docker_host})
    assert result["failed"] is True
    assert "the data-root from engine is 'docker', not an absolute path" in result["msg"]
