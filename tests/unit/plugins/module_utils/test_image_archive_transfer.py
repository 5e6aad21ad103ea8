"""image_archive's run: what a save in check mode reports and leaves alone, and that every
refusal carries what was found up to then."""

import json
import os

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils import _image_archive as archive
from ansible_collections.dockerhost.storage.plugins.module_utils import _image_archive_transfer
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    EngineUnavailable,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError

BUSYBOX = "sha256:" + "a" * 64
OTHER = "sha256:" + "d" * 64


class Engine:
    """An engine with one image and one container, answering as the Engine API does."""

    socket_path = "/run/test.sock"

    def __init__(self, broken=False):
        self.broken = broken

    def info(self):
        return {"Driver": "overlay2", "DockerRootDir": "/var/lib/docker"}

    def version(self):
        return {"Version": "20.10.24"}

    def images(self):
        if self.broken:
            raise EngineUnavailable("the engine on /run/test.sock closed the connection")
        return [{"Id": BUSYBOX}]

    def inspect_image(self, image_id):
        return {
            "Id": BUSYBOX,
            "RepoTags": ["busybox:latest"],
            "Size": 4000,
            "RootFS": {"Layers": ["l1"]},
        }

    def containers(self):
        return [{"Id": "c" * 64, "Names": ["/web"], "Image": "busybox:latest", "State": "exited"}]


@pytest.fixture
def engine(monkeypatch):
    def install(**kwargs):
        fake = Engine(**kwargs)
        monkeypatch.setattr(archive, "ImageEngineClient", lambda docker_host, timeout: fake)
        return fake

    return install


def options(path, **changes):
    params = {
        "state": "saved",
        "path": str(path),
        "remove_archive_after_load": False,
        "timeout": 600,
        "docker_host": "unix:///run/test.sock",
        "lock_timeout": 120,
        "lock_token": None,
    }
    params.update(changes)
    return params


def test_a_save_in_check_mode_reports_the_images_and_the_room_and_writes_nothing(
    tmp_path, engine, monkeypatch
):
    engine()
    asked = []

    def room(directory, need_bytes):
        asked.append((directory, need_bytes))
        return {"checked_path": str(tmp_path), "fits": True, "reasons": []}

    monkeypatch.setattr(archive, "room_for_archive", room)
    directory = tmp_path / "archive"
    result = _image_archive_transfer.transfer(options(directory), check_mode=True)
    assert result["changed"] is True
    assert result["images"] == [{"id": BUSYBOX, "tags": ["busybox:latest"], "size": 4000}]
    assert [c["name"] for c in result["containers"]] == ["web"]
    assert result["engine"] == {
        "driver": "overlay2",
        "version": "20.10.24",
        "data_root": "/var/lib/docker",
    }
    assert asked == [(str(directory), result["size"])]
    assert result["room"]["fits"] is True
    assert result["archive"] is None
    assert not os.path.exists(directory)


def test_an_archive_of_images_the_engine_lacks_is_refused_with_what_was_found(tmp_path, engine):
    engine()
    directory = tmp_path / "archive"
    os.makedirs(directory)
    manifest = archive.build_manifest(
        archive.images_from_inspections(
            [{"Id": OTHER, "RepoTags": ["old:1"], "Size": 10, "RootFS": {"Layers": ["x"]}}]
        ),
        0,
        "0" * 64,
        {},
        "t",
    )
    with open(archive.archive_paths(str(directory))[1], "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)
    with open(archive.archive_paths(str(directory))[0], "wb"):
        pass
    with pytest.raises(StorageError) as refused:
        _image_archive_transfer.transfer(options(directory), check_mode=True)
    assert "the archive at %s holds images the engine on /run/test.sock" % directory in str(
        refused.value
    )
    assert "old:1" in str(refused.value)
    found = refused.value.result
    assert found["changed"] is False
    assert [image["id"] for image in found["images"]] == [BUSYBOX]
    assert found["archive"]["manifest"] == archive.archive_paths(str(directory))[1]
    assert found["room"] is None


def test_an_engine_that_stops_answering_is_named_with_the_result(tmp_path, engine):
    engine(broken=True)
    with pytest.raises(StorageError) as refused:
        _image_archive_transfer.transfer(options(tmp_path / "archive"), check_mode=True)
    assert str(refused.value) == (
        "the Docker engine did not serve the images: the engine on /run/test.sock closed the "
        "connection"
    )
    # It failed before anything was known: every key, with nothing in it.
    assert refused.value.result == _image_archive_transfer.empty_result(str(tmp_path / "archive"))


def test_options_are_refused_before_the_engine_is_asked(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("")
    with pytest.raises(StorageError) as refused:
        _image_archive_transfer.transfer(options(afile), check_mode=True)
    assert str(refused.value) == (
        "path %s exists and is not a directory: give a directory for the image archive" % afile
    )
    assert refused.value.result == _image_archive_transfer.empty_result(str(afile))
    with pytest.raises(StorageError) as refused:
        _image_archive_transfer.transfer(options(tmp_path, timeout=0), check_mode=True)
    assert str(refused.value) == "timeout must be a positive number of seconds, got 0"
    assert refused.value.result == {}
