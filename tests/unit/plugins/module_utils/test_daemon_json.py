import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils._daemon_json import (
    DaemonJsonError,
    parse_daemon_json,
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
    with pytest.raises(DaemonJsonError, match="must hold a JSON object, found list"):
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
    }
    assert storage_settings({"data-root": "/a", "graph": "/b"})["data_root"] == "/a"


@pytest.mark.parametrize(
    "config, key",
    [({"data-root": 5}, "data-root"), ({"storage-opts": "overlay2.size=1G"}, "storage-opts")],
)
def test_wrong_types_are_named(config, key):
    with pytest.raises(DaemonJsonError, match="daemon.json key %s must be a" % key):
        storage_settings(config)
