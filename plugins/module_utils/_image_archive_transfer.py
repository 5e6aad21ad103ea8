# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image_archive module's application layer: check the options, take the engine lock
(outside check mode), then save the engine's images to the archive directory or load them
back, with the ``_image_archive`` functions.

``transfer`` is the whole module. A refusal raises StorageError with the result to return
beside the message (what was found up to then: the images, the room, the archive).

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os

from ansible_collections.dockerhost.storage.plugins.module_utils import _image_archive as archive
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    EngineUnavailable,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_lock import (
    hold_engine_lock,
)

ArchiveError = archive.ArchiveError


def empty_result(directory):
    """Every key the module returns, before anything is known."""
    return {
        "changed": False,
        "path": directory,
        "images": [],
        "size": 0,
        "room": None,
        "archive": None,
        "containers": [],
        "missing": {"ids": [], "tags": []},
        "matched": [],
        "loaded": [],
        "removed": False,
        "engine": None,
    }


def check_options(params):
    """The archive directory (absolute); ArchiveError naming the option that is wrong."""
    directory = os.path.abspath(params["path"])
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise ArchiveError(
            "path %s exists and is not a directory: give a directory for the image archive"
            % directory,
            empty_result(directory),
        )
    if params["timeout"] <= 0:
        raise ArchiveError(
            "timeout must be a positive number of seconds, got %d" % params["timeout"]
        )
    return directory


def archive_facts(directory, manifest):
    """The ``archive`` return value of a manifest, or None."""
    if manifest is None:
        return None
    tar_path, manifest_path = archive.archive_paths(directory)
    return {
        "tar": tar_path,
        "manifest": manifest_path,
        "size": manifest["tar"]["size"],
        "sha256": manifest["tar"]["sha256"],
        "created": manifest.get("created"),
        "engine": manifest.get("engine"),
    }


def public_images(images):
    return [{"id": image["id"], "tags": image["tags"], "size": image["size"]} for image in images]


def refuse_foreign_archive(client, directory, existing, images):
    """ArchiveError when the archive ``existing`` holds images the engine does not have: a
    save would lose them."""
    current_ids = {image["id"] for image in images}
    only_archived = [image for image in existing["images"] if image["id"] not in current_ids]
    if only_archived:
        raise ArchiveError(
            "the archive at %s holds images the engine on %s does not have (%s): load it "
            "with state=loaded, or move it away, before saving again"
            % (
                directory,
                client.socket_path,
                "; ".join(archive.describe_image(image) for image in only_archived),
            )
        )


def save(client, directory, result, check_mode):
    """``state: saved``: fill ``result`` and write the archive unless it is complete already."""
    engine = archive.read_engine(client)
    images = archive.read_engine_images(client)
    result.update(
        engine=engine,
        images=public_images(images),
        containers=archive.containers_left_behind(client.containers()),
        size=archive.estimated_size(images),
    )
    existing = archive.read_existing_manifest(directory)
    result["archive"] = archive_facts(directory, existing)
    if not images or (existing and archive.same_images(existing["images"], images)):
        return result
    if existing:
        refuse_foreign_archive(client, directory, existing, images)
    room = archive.room_for_archive(directory, result["size"])
    result["room"] = room
    if not room["fits"]:
        raise ArchiveError(
            "no room for the image archive at %s (filesystem of %s): %s; nothing was "
            "written: make room or set another archive directory"
            % (directory, room["checked_path"], "; ".join(room["reasons"]))
        )
    result["changed"] = True
    if not check_mode:
        manifest = archive.write_archive(client, directory, images, engine)
        result["archive"] = archive_facts(directory, manifest)
    return result


def load_checked(client, tar, directory, manifest, result):
    """Load the open, checked tar ``tar`` and check that the engine has every archived ID and
    tag afterwards; ArchiveError naming what it lacks (the archive is kept)."""
    with tar:
        result["loaded"] = archive.load_checked_tar(client, tar, directory, manifest)
    present, targets = archive.read_tag_targets(client)
    still, result["matched"] = archive.match_in_engine(
        manifest["images"], present, targets, archive.image_reader(client)
    )
    if still["ids"] or still["tags"]:
        raise ArchiveError(
            "after loading %s the engine on %s lacks %s; the archive is kept at %s"
            % (
                archive.archive_paths(directory)[0],
                client.socket_path,
                archive.describe_missing(still),
                directory,
            )
        )


def load(client, directory, result, check_mode, remove):
    """``state: loaded``: fill ``result``; load what the engine lacks, then remove the archive
    when ``remove``."""
    manifest = archive.read_manifest(directory)
    archived = manifest["images"]
    result.update(
        engine=archive.read_engine(client),
        images=[
            {"id": image["id"], "tags": sorted(image["tags"]), "size": image.get("size", 0)}
            for image in archived
        ],
        size=manifest["tar"]["size"],
        archive=archive_facts(directory, manifest),
    )
    present, targets = archive.read_tag_targets(client)
    missing, result["matched"] = archive.match_in_engine(
        archived, present, targets, archive.image_reader(client)
    )
    result["missing"] = missing
    if missing["ids"] or missing["tags"]:
        # Checked and loaded through one open file: a swapped name cannot slip in between.
        tar = archive.open_checked_tar(directory, manifest)
        result["changed"] = True
        if check_mode:
            tar.close()
            result["removed"] = remove
            return result
        load_checked(client, tar, directory, manifest, result)
    if remove:
        result["changed"] = True
        result["removed"] = True
        if not check_mode:
            archive.remove_archive(directory)
    return result


def transfer(params, check_mode):
    """The image_archive module for ``params`` (its options): the result to return. Raises
    StorageError naming the option, path or image, with the result found up to then."""
    directory = check_options(params)
    if not check_mode:
        hold_engine_lock(params, "image_archive: %s images at %s" % (params["state"], directory))
    result = empty_result(directory)
    try:
        client = archive.ImageEngineClient(params["docker_host"], timeout=params["timeout"])
    except ValueError as exc:
        raise ArchiveError(str(exc), result) from None
    try:
        if params["state"] == "saved":
            save(client, directory, result, check_mode)
        else:
            load(client, directory, result, check_mode, params["remove_archive_after_load"])
    except ArchiveError as exc:
        raise ArchiveError(str(exc), result) from None
    except EngineUnavailable as exc:
        raise ArchiveError("the Docker engine did not serve the images: %s" % exc, result) from None
    return result
