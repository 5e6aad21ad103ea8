import hashlib
import json
import os

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils import _image_archive as archive

BASE = "sha256:" + "a" * 64
TWO = "sha256:" + "b" * 64
LOOSE = "sha256:" + "c" * 64


def inspection(image_id, tags, size, layers):
    return {"Id": image_id, "RepoTags": tags, "Size": size, "RootFS": {"Layers": layers}}


def engine_images():
    return archive.images_from_inspections(
        [
            inspection(TWO, ["local/two:1"], 3000, ["l1", "l2"]),
            inspection(BASE, ["busybox:latest", "local/busybox:second"], 2000, ["l1"]),
            inspection(LOOSE, ["<none>:<none>"], 2500, ["l1", "l3"]),
        ]
    )


def test_images_are_sorted_by_id_with_real_tags_only():
    images = engine_images()
    assert [image["id"] for image in images] == [BASE, TWO, LOOSE]
    assert images[0]["tags"] == ["busybox:latest", "local/busybox:second"]
    assert images[2]["tags"] == []


def test_every_tag_of_a_tagged_image_and_the_id_of_an_untagged_one_are_saved():
    assert archive.names_to_save(engine_images()) == [
        "busybox:latest",
        "local/busybox:second",
        "local/two:1",
        LOOSE,
    ]


@pytest.mark.parametrize(
    "inspections, expected",
    [
        # A base image and two children: the base counts once.
        (
            [
                inspection(BASE, ["a:1"], 2000, ["l1"]),
                inspection(TWO, ["b:1"], 3000, ["l1", "l2"]),
                inspection(LOOSE, [], 2500, ["l1", "l3"]),
            ],
            2000 + 1000 + 500,
        ),
        # Two image IDs on the same layers (a label differs): the layers count once.
        (
            [inspection(BASE, ["a:1"], 2000, ["l1"]), inspection(TWO, ["b:1"], 2000, ["l1"])],
            2000,
        ),
        # A shared base that is not an image itself counts twice: the estimate errs high.
        (
            [
                inspection(BASE, ["a:1"], 3000, ["l0", "l1"]),
                inspection(TWO, ["b:1"], 3000, ["l0", "l2"]),
            ],
            6000,
        ),
    ],
)
def test_estimated_size_counts_layers_shared_through_prefix_images_once(inspections, expected):
    assert archive.estimated_size(archive.images_from_inspections(inspections)) == expected


def test_the_manifest_round_trips_and_records_the_tar_and_the_engine():
    images = engine_images()
    manifest = archive.build_manifest(
        images,
        4096,
        "d" * 64,
        {"driver": "vfs", "version": "20.10.24", "data_root": "/var/lib/docker"},
        "2026-11-24T05:30:00Z",
    )
    parsed = archive.parse_manifest(json.dumps(manifest), "/a/manifest.json")
    assert parsed["tar"] == {"file": "images.tar", "size": 4096, "sha256": "d" * 64}
    assert parsed["engine"]["driver"] == "vfs"
    assert archive.same_images(parsed["images"], images)
    # The layers go into the manifest: they recognise an image loaded under another ID.
    assert parsed["images"][0]["layers"] == ["l1"]


@pytest.mark.parametrize(
    "text, phrase",
    [
        ("{not json", "is not valid JSON"),
        ("[]", "does not hold a JSON object"),
        ('{"format": 2}', "format is 2"),
        ('{"format": 1, "tar": {"file": "images.tar", "size": "1"}}', "key tar must hold"),
        (
            '{"format": 1, "tar": {"file": "images.tar", "size": 1, "sha256": "x"}, "images": {}}',
            "key images must be a list",
        ),
    ],
)
def test_a_damaged_manifest_is_named_with_its_key(text, phrase):
    with pytest.raises(archive.ArchiveError, match=phrase) as error:
        archive.parse_manifest(text, "/a/manifest.json")
    assert "/a/manifest.json" in str(error.value)


def test_same_images_compares_ids_and_tags():
    images = engine_images()
    retagged = [dict(image) for image in images]
    retagged[1] = dict(retagged[1], tags=["local/two:2"])
    assert archive.same_images(images, list(reversed(images)))
    assert not archive.same_images(images, retagged)
    assert not archive.same_images(images, images[:2])


def _layers_of(images):
    return {image["id"]: {"layers": image["layers"]} for image in images}.get


def test_missing_names_absent_ids_and_tags_that_name_another_image():
    images = engine_images()
    present = {BASE, TWO}
    targets = {"busybox:latest": BASE, "local/busybox:second": TWO, "local/two:1": TWO}
    missing, matched = archive.match_in_engine(images, present, targets, _layers_of(images))
    assert missing == {"ids": [LOOSE], "tags": ["local/busybox:second"]}
    assert archive.describe_missing(missing) == ("image IDs %s; tags local/busybox:second" % LOOSE)
    assert [(entry["archived_id"], entry["by"]) for entry in matched] == [(BASE, "id"), (TWO, "id")]
    everything = {"busybox:latest": BASE, "local/busybox:second": BASE, "local/two:1": TWO}
    missing, matched = archive.match_in_engine(
        images, {BASE, TWO, LOOSE}, everything, _layers_of(images)
    )
    assert missing == {"ids": [], "tags": []}
    assert len(matched) == 3


MANIFEST_ID = "sha256:" + "e" * 64
OTHER = "sha256:" + "f" * 64


def test_across_image_stores_images_match_by_config_digest_or_layers():
    # Saved from a graphdriver (IDs are configuration digests), loaded into the containerd
    # store, which names the image by its manifest digest: the same tag, the same layers.
    archived = [dict(image, config_digest=image["id"]) for image in engine_images()[:1]]
    layers = {MANIFEST_ID: {"layers": ["l1"]}, OTHER: {"layers": ["l9"]}}.get
    targets = {"busybox:latest": MANIFEST_ID, "local/busybox:second": MANIFEST_ID}
    missing, matched = archive.match_in_engine(archived, {MANIFEST_ID}, targets, layers)
    assert missing == {"ids": [], "tags": []}
    assert matched == [
        {
            "tags": ["busybox:latest", "local/busybox:second"],
            "archived_id": BASE,
            "id": MANIFEST_ID,
            "by": "layers",
        }
    ]
    # A tag on an image with other layers is missing.
    targets["local/busybox:second"] = OTHER
    missing, _matched = archive.match_in_engine(archived, {MANIFEST_ID, OTHER}, targets, layers)
    assert missing == {"ids": [], "tags": ["local/busybox:second"]}
    # The other way: saved from the containerd store, loaded into a graphdriver, whose ID is
    # the configuration digest the save recorded.
    saved = [{"id": MANIFEST_ID, "tags": ["web:1"], "config_digest": BASE, "layers": ["l1"]}]
    missing, matched = archive.match_in_engine(
        saved, {BASE}, {"web:1": BASE}, lambda image_id: pytest.fail("layers not needed")
    )
    assert missing == {"ids": [], "tags": []} and matched[0]["by"] == "config digest"
    # Same layers, another configuration (made at another time): not the archived image.
    timed = [dict(archived[0], created="2026-12-02T04:53:32.1849Z")]
    same_time = {MANIFEST_ID: {"layers": ["l1"], "created": "2026-12-02T04:53:32.184900000Z"}}
    other_time = {MANIFEST_ID: {"layers": ["l1"], "created": "2026-12-02T05:00:00Z"}}
    targets = {"busybox:latest": MANIFEST_ID, "local/busybox:second": MANIFEST_ID}
    assert archive.match_in_engine(timed, {MANIFEST_ID}, targets, same_time.get)[1][0]["by"] == (
        "layers"
    )
    missing, matched = archive.match_in_engine(timed, {MANIFEST_ID}, targets, other_time.get)
    assert matched == [] and missing["ids"] == [BASE]
    # Untagged: found by its configuration digest.
    loose = [{"id": MANIFEST_ID, "tags": [], "config_digest": BASE, "layers": ["l1"]}]
    assert archive.match_in_engine(loose, {BASE}, {}, layers)[1][0]["id"] == BASE


def test_config_digests_are_read_from_both_save_layouts():
    entries = [
        {"Config": "blobs/sha256/" + "a" * 64, "RepoTags": ["web:1"], "Layers": []},
        {"Config": "b" * 64 + ".json", "RepoTags": None, "Layers": []},
        {"Config": "index.json"},
    ]
    by_tag, digests = archive.config_digests_from_save(entries)
    assert by_tag == {"web:1": BASE}
    assert digests == {BASE, TWO}
    images = [
        {"id": MANIFEST_ID, "tags": ["web:1"]},
        {"id": TWO, "tags": []},
        {"id": LOOSE, "tags": []},
    ]
    assert [i["config_digest"] for i in archive.with_config_digests(images, by_tag, digests)] == [
        BASE,
        TWO,
        None,
    ]
    assert archive.config_digests_from_save(None) == ({}, set())


def test_containers_left_behind_are_named_and_sorted():
    containers = archive.containers_left_behind(
        [
            {"Id": "2" * 64, "Names": ["/web"], "Image": "nginx:latest", "State": "running"},
            {"Id": "1" * 64, "Names": ["/db"], "Image": "postgres:16", "State": "exited"},
        ]
    )
    assert [container["name"] for container in containers] == ["db", "web"]
    assert containers[1] == {
        "id": "2" * 64,
        "name": "web",
        "image": "nginx:latest",
        "state": "running",
    }


def test_an_archive_is_complete_only_with_a_tar_of_the_recorded_size(tmp_path):
    directory = str(tmp_path)
    tar_path, manifest_path = archive.archive_paths(directory)
    with open(tar_path, "wb") as handle:
        handle.write(b"x" * 100)
    os.chmod(tar_path, 0o600)
    manifest = archive.build_manifest(
        engine_images(), 100, hashlib.sha256(b"x" * 100).hexdigest(), {}, "t"
    )
    assert archive.read_existing_manifest(directory) is None
    with open(manifest_path, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)
    assert archive.read_existing_manifest(directory) == manifest
    archive.check_tar(directory, manifest)
    with open(tar_path, "r+b") as handle:
        handle.write(b"y")
    with pytest.raises(archive.ArchiveError, match="has sha256 .* nothing was loaded"):
        archive.check_tar(directory, manifest)
    with open(tar_path, "ab") as handle:
        handle.write(b"z")
    assert archive.read_existing_manifest(directory) is None
    with pytest.raises(archive.ArchiveError, match="has 101 bytes"):
        archive.check_tar(directory, manifest)
    assert archive.remove_archive(directory) is True
    assert not os.path.exists(directory)


def _archive(directory, data):
    """An archive in ``directory`` whose tar holds ``data``; its manifest."""
    os.makedirs(directory, exist_ok=True)
    tar_path, manifest_path = archive.archive_paths(directory)
    with open(tar_path, "wb") as handle:
        handle.write(data)
    os.chmod(tar_path, 0o600)
    manifest = archive.build_manifest(
        engine_images(), len(data), hashlib.sha256(data).hexdigest(), {}, "t"
    )
    with open(manifest_path, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)
    return manifest


class RecordingEngine:
    """Stands in for the engine's load: keeps what the body hands over, block by block."""

    def __init__(self):
        self.received = b""

    def load_images(self, body, length, tar_path):
        while True:
            block = body.read(1024)
            if not block:
                break
            self.received += block
        return ["Loaded image: %d bytes from %s" % (length, tar_path)]


def test_the_tar_that_was_checked_is_the_one_loaded_even_when_its_name_is_swapped(tmp_path):
    directory = str(tmp_path / "archive")
    good = b"checked tar " * 1000
    manifest = _archive(directory, good)
    tar_path = archive.archive_paths(directory)[0]
    swapped = str(tmp_path / "archive" / "other.tar")
    with open(swapped, "wb") as handle:
        handle.write(b"unchecked tar " * 1000)
    os.chmod(swapped, 0o600)

    tar = archive.open_checked_tar(directory, manifest)
    os.replace(swapped, tar_path)  # between the check and the load
    engine = RecordingEngine()
    with tar:
        messages = archive.load_checked_tar(engine, tar, directory, manifest)
    assert engine.received == good
    assert messages == ["Loaded image: %d bytes from %s" % (len(good), tar_path)]


def test_a_tar_changed_in_place_while_loading_never_hands_over_its_end(tmp_path):
    directory = str(tmp_path / "archive")
    good = os.urandom(10 * 1024)
    manifest = _archive(directory, good)
    tar_path = archive.archive_paths(directory)[0]
    tar = archive.open_checked_tar(directory, manifest)
    with open(tar_path, "r+b") as handle:  # the same file, rewritten after the check
        handle.seek(len(good) - 10)
        handle.write(b"0123456789")
    engine = RecordingEngine()
    with tar, pytest.raises(archive.ArchiveError) as raised:
        archive.load_checked_tar(engine, tar, directory, manifest)
    assert "%s changed while it was sent to the engine" % tar_path in str(raised.value)
    assert "nothing was loaded" in str(raised.value)
    assert len(engine.received) < len(good)
    assert engine.received == good[: len(engine.received)]


def test_links_fifos_and_tars_others_may_write_are_refused(tmp_path):
    directory = str(tmp_path / "archive")
    manifest = _archive(directory, b"tar bytes")
    tar_path, manifest_path = archive.archive_paths(directory)

    os.chmod(tar_path, 0o666)
    with pytest.raises(archive.ArchiveError) as raised:
        archive.check_tar(directory, manifest)
    assert "%s belongs to uid %d and has mode 0666" % (tar_path, os.geteuid()) in str(raised.value)
    assert "nothing was loaded" in str(raised.value)
    os.chmod(tar_path, 0o600)
    archive.check_tar(directory, manifest)

    elsewhere = str(tmp_path / "elsewhere.tar")
    os.replace(tar_path, elsewhere)
    os.symlink(elsewhere, tar_path)
    with pytest.raises(archive.ArchiveError, match="%s is a symbolic link" % tar_path):
        archive.check_tar(directory, manifest)
    assert archive.read_existing_manifest(directory) is None
    os.unlink(tar_path)
    os.mkfifo(tar_path)
    with pytest.raises(archive.ArchiveError, match="%s is not a regular file" % tar_path):
        archive.check_tar(directory, manifest)

    moved = str(tmp_path / "manifest.json")
    os.replace(manifest_path, moved)
    os.symlink(moved, manifest_path)
    with pytest.raises(archive.ArchiveError, match="%s is a symbolic link" % manifest_path):
        archive.read_manifest(directory)


def test_a_missing_archive_says_to_save_first(tmp_path):
    with pytest.raises(archive.ArchiveError, match="no image archive at .* state=saved"):
        archive.read_manifest(str(tmp_path / "nowhere"))


def test_room_is_judged_on_the_nearest_existing_directory(tmp_path):
    room = archive.room_for_archive(str(tmp_path / "a" / "b"), 1000)
    assert room["checked_path"] == str(tmp_path)
    assert room["need"]["bytes"] == 1000 + archive._capacity.MARGIN_FLOOR_BYTES
    huge = archive.room_for_archive(str(tmp_path), 1 << 62)
    assert huge["fits"] is False and huge["reasons"]
