"""image_archive carries the images of a real private dockerd over a change of storage driver:
saved on vfs (two tagged images, one untagged, a container), the same data-root restarted on
overlay2 (the images gone from the engine's view), loaded, every ID and tag back and a
container running from a loaded image. A damaged tar and an archive directory without room are
refused before anything changes."""

import json
import os
import shutil
import sys

import pytest
from ansible_module import run_module
from collection_path import collections_root
from harness import import_image
from harness.swap_on_open import SwapOnOpen

sys.path.insert(0, collections_root())
from ansible_collections.dockerhost.storage.plugins.module_utils import (  # noqa: E402
    _image_archive,
)

pytestmark = pytest.mark.integration

BUSYBOX = "dockerhost-test/busybox:latest"
RUN = ("run", "--rm", "--network", "none")


def inventory(daemon):
    """Every image the engine has, as ``{id: sorted tags}`` (untagged: no tags)."""
    listing = daemon.docker(
        "images", "--all", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"
    )
    found = {}
    for line in listing.stdout.splitlines():
        image_id, name = line.split(" ", 1)
        found.setdefault(image_id, [])
        if name != "<none>:<none>":
            found[image_id].append(name)
    return {image_id: sorted(tags) for image_id, tags in found.items()}


@pytest.fixture(scope="module")
def vfs_engine(make_loopfs_module, start_dockerd_module, busybox_image):
    """A private dockerd on vfs with busybox under two tags, a committed image under one tag,
    an untagged committed image and a stopped container; ``(daemon, factory, inventory)``."""
    fs = make_loopfs_module("ext4", size_mb=512)
    daemon = start_dockerd_module(os.path.join(fs.mount_point, "docker"), storage_driver="vfs")
    daemon.assert_started()
    import_image(daemon, busybox_image)
    daemon.docker("tag", BUSYBOX, "local/busybox:second")
    daemon.docker(
        "run", "--network", "none", "--name", "maker", BUSYBOX, "sh", "-c", "echo two >/two"
    )
    daemon.docker("commit", "maker", "local/two:1")
    daemon.docker("rm", "maker")
    daemon.docker("run", "--network", "none", "--name", "maker", BUSYBOX, "sh", "-c", "echo 3 >/3")
    untagged = daemon.docker("commit", "maker").stdout.strip()
    daemon.docker("rm", "maker")
    daemon.docker("create", "--network", "none", "--name", "keeper", "local/two:1")
    images = inventory(daemon)
    assert len(images) == 3 and images[untagged] == []
    return daemon, start_dockerd_module, images


def archive_args(daemon, path, **extra):
    args = {"path": path, "docker_host": "unix://" + daemon.socket, "timeout": 120}
    args.update(extra)
    return args


def test_an_archive_directory_without_room_is_refused_and_nothing_is_written(
    vfs_engine, make_loopfs
):
    daemon = vfs_engine[0]
    small = make_loopfs("ext4", size_mb=64)
    path = os.path.join(small.mount_point, "archive")
    result = run_module("image_archive", archive_args(daemon, path, state="saved"))
    assert result.get("failed"), result
    assert "no room for the image archive at %s" % path in result["msg"]
    assert "nothing was written" in result["msg"]
    assert result["room"]["fits"] is False
    assert result["room"]["checked_path"] == small.mount_point
    assert sorted(os.listdir(small.mount_point)) == ["lost+found"]


def test_a_damaged_tar_is_refused_by_its_sha256_before_anything_is_loaded(
    vfs_engine, tmp_path, make_loopfs, start_dockerd
):
    daemon, images = vfs_engine[0], vfs_engine[2]
    path = str(tmp_path / "archive")
    saved = run_module("image_archive", archive_args(daemon, path, state="saved"))
    assert saved.get("changed") and not saved.get("failed"), saved
    tar = os.path.join(path, "images.tar")
    intact = str(tmp_path / "intact.tar")
    shutil.copy2(tar, intact)
    with open(tar, "r+b") as handle:
        handle.seek(saved["archive"]["size"] // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    fs = make_loopfs("ext4", size_mb=256)
    empty = start_dockerd(os.path.join(fs.mount_point, "docker"), storage_driver="overlay2")
    empty.assert_started()
    result = run_module("image_archive", archive_args(empty, path, state="loaded"))
    assert result.get("failed"), result
    assert "%s has sha256" % tar in result["msg"]
    assert saved["archive"]["sha256"] in result["msg"]
    assert "nothing was loaded" in result["msg"]
    assert inventory(empty) == {}
    assert sorted(result["missing"]["ids"]) == sorted(images)

    # The intact tar reached through a link is refused too: the link could point anywhere.
    os.unlink(tar)
    os.symlink(intact, tar)
    linked = run_module("image_archive", archive_args(empty, path, state="loaded"))
    assert linked.get("failed"), linked
    assert "%s is a symbolic link" % tar in linked["msg"]
    assert inventory(empty) == {}


def test_a_tar_swapped_after_its_check_is_not_what_gets_loaded(
    busybox_dockerd, tmp_path, make_loopfs, start_dockerd
):
    source = busybox_dockerd
    # An image of some size, so that checking the archive takes a moment.
    source.docker(
        "run",
        "--network",
        "none",
        "--name",
        "maker",
        BUSYBOX,
        "sh",
        "-c",
        "dd if=/dev/urandom of=/blob bs=1M count=48 2>/dev/null",
    )
    source.docker("commit", "maker", "local/blob:1")
    source.docker("rm", "maker")
    path = str(tmp_path / "archive")
    os.makedirs(path, mode=0o700)
    # The unchecked tar a racing process slips in: busybox under a tag the archive lacks.
    unchecked = os.path.join(path, "incoming.tar")
    source.docker("tag", BUSYBOX, "unchecked/busybox:1")
    source.docker("save", "-o", unchecked, "unchecked/busybox:1")
    source.docker("rmi", "unchecked/busybox:1")
    os.chmod(unchecked, 0o600)
    saved = run_module("image_archive", archive_args(source, path, state="saved"))
    assert saved.get("changed") and not saved.get("failed"), saved
    wanted = inventory(source)

    fs = make_loopfs("ext4", size_mb=512)
    empty = start_dockerd(os.path.join(fs.mount_point, "docker"), storage_driver="overlay2")
    empty.assert_started()
    racer = SwapOnOpen(path, "images.tar", unchecked)
    result = run_module("image_archive", archive_args(empty, path, state="loaded"))
    assert racer.swapped(), "the racing process never saw images.tar opened"

    tags = sorted(tag for found in inventory(empty).values() for tag in found)
    assert "unchecked/busybox:1" not in tags, result
    assert not result.get("failed"), result
    assert inventory(empty) == wanted


def test_a_tar_changed_in_place_while_it_is_sent_is_not_loaded(
    busybox_dockerd, tmp_path, make_loopfs, start_dockerd
):
    path = str(tmp_path / "archive")
    saved = run_module("image_archive", archive_args(busybox_dockerd, path, state="saved"))
    assert saved.get("changed") and not saved.get("failed"), saved
    fs = make_loopfs("ext4", size_mb=256)
    empty = start_dockerd(os.path.join(fs.mount_point, "docker"), storage_driver="overlay2")
    empty.assert_started()
    client = _image_archive.ImageEngineClient("unix://" + empty.socket, timeout=120)
    manifest = _image_archive.read_manifest(path)
    tar_path = os.path.join(path, "images.tar")

    tar = _image_archive.open_checked_tar(path, manifest)
    # Checked; now the same file is rewritten in its middle before it is sent.
    with open(tar_path, "r+b") as handle:
        handle.seek(manifest["tar"]["size"] // 2)
        block = handle.read(4096)
        handle.seek(-len(block), os.SEEK_CUR)
        handle.write(bytes(byte ^ 0xFF for byte in block))
    with tar, pytest.raises(_image_archive.ArchiveError) as raised:
        _image_archive.load_checked_tar(client, tar, path, manifest)
    assert "%s changed while it was sent to the engine" % tar_path in str(raised.value)
    assert inventory(empty) == {}


def test_images_survive_a_switch_from_vfs_to_overlay2(vfs_engine, tmp_path):
    daemon, factory, images = vfs_engine
    path = str(tmp_path / "archive")

    check = run_module("image_archive", archive_args(daemon, path, state="saved"), check=True)
    assert check.get("changed") and not check.get("failed"), check
    assert not os.path.exists(path)
    assert {image["id"]: image["tags"] for image in check["images"]} == images
    assert all(image["size"] > 0 for image in check["images"])
    assert check["size"] > 0 and check["room"]["fits"]
    assert [container["name"] for container in check["containers"]] == ["keeper"]

    saved = run_module("image_archive", archive_args(daemon, path, state="saved"))
    assert saved.get("changed") and not saved.get("failed"), saved
    assert sorted(os.listdir(path)) == ["images.tar", "manifest.json"]
    with open(os.path.join(path, "manifest.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    assert {image["id"]: image["tags"] for image in manifest["images"]} == images
    assert manifest["engine"]["driver"] == "vfs"
    assert manifest["tar"]["size"] == os.path.getsize(os.path.join(path, "images.tar"))
    mtime = os.stat(os.path.join(path, "images.tar")).st_mtime_ns

    again = run_module("image_archive", archive_args(daemon, path, state="saved"))
    assert not again.get("changed") and not again.get("failed"), again
    assert os.stat(os.path.join(path, "images.tar")).st_mtime_ns == mtime

    # The same data-root, restarted on overlay2: the vfs images are out of the engine's view.
    daemon.stop()
    switched = factory(daemon.data_root, storage_driver="overlay2")
    switched.assert_started()
    assert switched.info()["Driver"] == "overlay2"
    assert inventory(switched) == {}

    would = run_module("image_archive", archive_args(switched, path, state="loaded"), check=True)
    assert would.get("changed") and not would.get("failed"), would
    assert inventory(switched) == {}

    loaded = run_module("image_archive", archive_args(switched, path, state="loaded"))
    assert loaded.get("changed") and not loaded.get("failed"), loaded
    assert sorted(loaded["missing"]["ids"]) == sorted(images)
    assert inventory(switched) == images
    assert switched.docker(*RUN, "local/two:1", "cat", "/two").stdout == "two\n"

    nothing = run_module("image_archive", archive_args(switched, path, state="loaded"))
    assert not nothing.get("changed") and not nothing.get("failed"), nothing
    assert nothing["loaded"] == [] and nothing["missing"] == {"ids": [], "tags": []}

    removed = run_module(
        "image_archive",
        archive_args(switched, path, state="loaded", remove_archive_after_load=True),
    )
    assert removed.get("changed") and removed["removed"], removed
    assert not os.path.exists(path)
    assert inventory(switched) == images


def test_a_silent_engine_and_a_missing_archive_are_named(tmp_path):
    socket = str(tmp_path / "nobody.sock")
    result = run_module(
        "image_archive",
        {"state": "saved", "path": str(tmp_path / "a"), "docker_host": "unix://" + socket},
    )
    assert result.get("failed"), result
    assert "no Docker engine socket at %s" % socket in result["msg"]
    assert not os.path.exists(tmp_path / "a")
    missing = run_module(
        "image_archive",
        {"state": "loaded", "path": str(tmp_path / "a"), "docker_host": "unix://" + socket},
    )
    assert missing.get("failed"), missing
    assert "no image archive at %s" % (tmp_path / "a") in missing["msg"]
    assert "state=saved" in missing["msg"]


def _store_engine(start_dockerd, make_loopfs, engine, tmp_path, name, containerd_store):
    """A private dockerd 28.5 on a fresh ext4: overlay2 (a graphdriver), or the containerd
    image store (features.containerd-snapshotter)."""
    fs = make_loopfs("ext4", size_mb=512)
    config = tmp_path / ("%s.json" % name)
    config.write_text(json.dumps({"features": {"containerd-snapshotter": containerd_store}}))
    daemon = start_dockerd(
        os.path.join(fs.mount_point, "docker"), engine=engine, config_file=str(config)
    )
    daemon.assert_started()
    assert daemon.info()["Driver"] == ("overlayfs" if containerd_store else "overlay2")
    return daemon


def _archive(daemon, state, path):
    return run_module(
        "image_archive",
        {"state": state, "path": str(path), "docker_host": "unix://" + daemon.socket},
    )


def test_images_move_between_a_graphdriver_and_the_containerd_store_both_ways(
    forky_engine, start_dockerd, make_loopfs, busybox_image, tmp_path
):
    """Image IDs change between the two stores (a configuration digest, a manifest digest):
    a real dockerd 28.5 each way, the images matched by tag and by configuration digest or
    layers, and a container runs from each loaded image."""
    graph = _store_engine(start_dockerd, make_loopfs, forky_engine, tmp_path, "graph", False)
    import_image(graph, busybox_image)
    graph.docker("tag", BUSYBOX, "local/busybox:second")
    before = inventory(graph)
    [graph_id] = [image_id for image_id, tags in before.items() if BUSYBOX in tags]

    saved = _archive(graph, "saved", tmp_path / "from-graph")
    assert not saved.get("failed"), saved.get("msg")
    recorded = json.loads((tmp_path / "from-graph" / "manifest.json").read_text())
    # A graphdriver's image ID is its configuration digest.
    assert recorded["images"][0]["config_digest"] == graph_id
    assert recorded["images"][0]["layers"]

    store = _store_engine(start_dockerd, make_loopfs, forky_engine, tmp_path, "store", True)
    loaded = _archive(store, "loaded", tmp_path / "from-graph")
    assert not loaded.get("failed"), loaded.get("msg")
    assert loaded["changed"] is True and loaded["missing"]["ids"] == [graph_id]
    [match] = loaded["matched"]
    assert match["archived_id"] == graph_id and match["by"] == "layers"
    assert match["id"] != graph_id
    assert match["tags"] == ["dockerhost-test/busybox:latest", "local/busybox:second"]
    assert inventory(store) == {match["id"]: match["tags"]}
    assert store.docker(*RUN, "local/busybox:second", "echo", "ran").stdout.strip() == "ran"
    again = _archive(store, "loaded", tmp_path / "from-graph")
    assert again["changed"] is False and again["matched"][0]["by"] == "layers"

    # Back: from the containerd store into a fresh graphdriver.
    saved = _archive(store, "saved", tmp_path / "from-store")
    assert not saved.get("failed"), saved.get("msg")
    fresh = _store_engine(start_dockerd, make_loopfs, forky_engine, tmp_path, "fresh", False)
    loaded = _archive(fresh, "loaded", tmp_path / "from-store")
    assert not loaded.get("failed"), loaded.get("msg")
    [match] = loaded["matched"]
    assert match["archived_id"] != match["id"] and match["by"] == "config digest"
    # The configuration digest is the same image's on every store: back to the first ID.
    assert match["id"] == graph_id
    assert inventory(fresh) == before
    assert fresh.docker(*RUN, BUSYBOX, "echo", "ran").stdout.strip() == "ran"
