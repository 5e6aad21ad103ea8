# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Save every image of an engine to an archive directory and load it back, through the Engine
API: what carries the images over a change of storage driver.

An archive directory holds ``images.tar`` (the ``docker save`` format, streamed from
``GET /images/get``) and ``manifest.json`` (the images with their tags, the tar's size and
sha256, the engine's driver and version at save time, and per image its configuration digest
and layers). The manifest is written last, so an archive without one is incomplete. Save and
load on the same kind of image store keep image IDs, which makes the check after a load exact.
Between a graphdriver and the containerd image store IDs change (a graphdriver names an image
by its configuration digest, the containerd store by its manifest or index digest): an image
then counts as loaded when its tags name an image with its configuration digest as ID, or with
the same layers, and the result says which (``match_in_engine``).

The functions at the top are pure; ``ImageEngineClient`` and the functions below it touch the
live system (the engine's socket, the archive directory).

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import http.client
import json
import os
import socket
import stat
import tarfile
import tempfile
from urllib.parse import quote

from ansible_collections.dockerhost.storage.plugins.module_utils import _capacity, _mountinfo
from ansible_collections.dockerhost.storage.plugins.module_utils._atomic_file import (
    write_text_atomically,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    ContainerEngineClient,
    EngineError,
    EngineNotFound,
    EngineUnavailable,
    _error_message,
    unix_http_connection,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError

MANIFEST_NAME = "manifest.json"
TAR_NAME = "images.tar"
MANIFEST_FORMAT = 1
NO_TAG = "<none>:<none>"
CHUNK = 1 << 20
# The margin beyond the images' size the archive's filesystem must keep, in percent (the floors
# of _capacity.fit_on_target apply: the archive usually shares the data-root's filesystem,
# which must not be filled).
ARCHIVE_MARGIN_PERCENT = 10.0
# Files an archive needs: the tar, the manifest and the temporary file of each.
ARCHIVE_INODES = 4


class ArchiveError(StorageError):
    """The archive cannot be written, read or loaded; the message names the path or key, what
    was found and what to do."""


# ---- pure functions ------------------------------------------------------------------------


def image_tags(repo_tags):
    """The real tags of an image: ``RepoTags`` without ``<none>:<none>``, sorted."""
    return sorted(tag for tag in (repo_tags or []) if tag and tag != NO_TAG)


def images_from_inspections(inspections):
    """One entry per image, sorted by ID, from ``GET /images/{id}/json`` answers: ``id``,
    ``tags`` (sorted), ``size`` (bytes of all its layers) and ``layers`` (diff IDs, base
    first)."""
    images = []
    for answer in inspections:
        images.append(
            {
                "id": answer["Id"],
                "tags": image_tags(answer.get("RepoTags")),
                "size": int(answer.get("Size") or 0),
                "layers": list((answer.get("RootFS") or {}).get("Layers") or []),
                "created": answer.get("Created"),
            }
        )
    return sorted(images, key=lambda image: image["id"])


def names_to_save(images):
    """The names for ``GET /images/get?names=...``: every tag of a tagged image (so that the
    tar carries them all), the ID of an untagged one."""
    names = []
    for image in images:
        names.extend(image["tags"] or [image["id"]])
    return names


def estimated_size(images):
    """Bytes the archive's layers take, each layer counted once as far as the images tell.

    An image's ``size`` covers all its layers. When another image's layers are a prefix of its
    own, only the difference is new; two images sharing a base that is not itself an image
    count that base twice, so the estimate errs on the large side.
    """
    total = 0
    for image in images:
        base = 0
        for other in images:
            if other is image or len(other["layers"]) > len(image["layers"]):
                continue
            if other["layers"] == image["layers"][: len(other["layers"])] and other["layers"]:
                # The same layers (another image ID on them) count once: the first by ID.
                if len(other["layers"]) == len(image["layers"]) and other["id"] > image["id"]:
                    continue
                base = max(base, other["size"])
        total += max(image["size"] - base, 0)
    return total


def build_manifest(images, tar_size, tar_sha256, engine, created):
    """The manifest of an archive: ``format``, ``created`` (UTC, ISO 8601), ``engine``
    (``driver``, ``version``, ``data_root`` at save time), ``images`` (``id``, ``tags``,
    ``size``) and ``tar`` (``file``, ``size``, ``sha256``)."""
    return {
        "format": MANIFEST_FORMAT,
        "created": created,
        "engine": {
            "driver": engine.get("driver"),
            "version": engine.get("version"),
            "data_root": engine.get("data_root"),
        },
        "images": [
            {
                "id": image["id"],
                "tags": list(image["tags"]),
                "size": image["size"],
                "config_digest": image.get("config_digest"),
                "layers": list(image.get("layers") or []),
                "created": image.get("created"),
            }
            for image in images
        ],
        "tar": {"file": TAR_NAME, "size": tar_size, "sha256": tar_sha256},
    }


def parse_manifest(text, path):
    """The manifest in ``text`` (read from ``path``), checked; ArchiveError naming the key
    otherwise."""
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise ArchiveError(
            "%s is not valid JSON (%s): the archive is damaged; save the images again" % (path, exc)
        ) from None
    if not isinstance(manifest, dict):
        raise ArchiveError("%s does not hold a JSON object: save the images again" % path)
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ArchiveError(
            "%s: format is %r, this collection reads format %d"
            % (path, manifest.get("format"), MANIFEST_FORMAT)
        )
    tar = manifest.get("tar")
    if (
        not isinstance(tar, dict)
        or not isinstance(tar.get("size"), int)
        or not isinstance(tar.get("sha256"), str)
        or tar.get("file") != TAR_NAME
    ):
        raise ArchiveError(
            "%s: key tar must hold file %r, an integer size and a sha256; found %r"
            % (path, TAR_NAME, tar)
        )
    images = manifest.get("images")
    if not isinstance(images, list) or not all(
        isinstance(image, dict)
        and isinstance(image.get("id"), str)
        and isinstance(image.get("tags"), list)
        for image in images
    ):
        raise ArchiveError("%s: key images must be a list of {id, tags, size}" % path)
    return manifest


def image_inventory(images):
    """``{id: sorted tags}`` of a list of images (from the engine or a manifest)."""
    return {image["id"]: sorted(image["tags"]) for image in images}


def same_images(archived, current):
    """True when two lists of images hold the same IDs with the same tags."""
    return image_inventory(archived) == image_inventory(current)


def _how_matched(image, candidate, image_of):
    """How the engine image ``candidate`` (an ID, or None) is the archived ``image``: by
    ``id``, by ``config digest`` or by ``layers`` (with the same creation time when the archive
    records one); None when it is not. ``image_of`` is ``match_in_engine``'s."""
    if candidate is None:
        return None
    if candidate == image["id"]:
        return "id"
    if image.get("config_digest") and candidate == image["config_digest"]:
        return "config digest"
    if not image.get("layers"):
        return None
    found = image_of(candidate) or {}
    if list(found.get("layers") or []) != list(image["layers"]):
        return None
    if image.get("created") and _instant(found.get("created")) != _instant(image["created"]):
        return None
    return "layers"


def match_in_engine(archived, present_ids, tag_targets, image_of):
    """Where the engine holds each archived image: ``(missing, matched)``.

    ``present_ids`` is the set of image IDs the engine has, ``tag_targets`` maps each tag the
    engine knows to the ID it names (a tag that names another image counts as missing), and
    ``image_of(id)`` gives an engine image's ``layers`` (diff IDs, base first) and ``created``
    time. An archived image is there under its own ID, or, across image stores, where each of
    its tags names an image whose ID is the archived configuration digest (a graphdriver's
    IDs), or which has the same layers and creation time (the containerd store's IDs are
    manifest digests; two images on the same layers with another configuration, such as
    another CMD, were made at different times). ``missing`` is ``{"ids", "tags"}``;
    ``matched`` lists ``{"tags", "archived_id", "id", "by"}`` with ``by`` one of ``id``,
    ``config digest``, ``layers``.
    """

    missing = {"ids": [], "tags": []}
    matched = []
    for image in archived:
        found = None
        if image["tags"]:
            for tag in image["tags"]:
                candidate = tag_targets.get(tag)
                by = _how_matched(image, candidate, image_of)
                if by is None:
                    missing["tags"].append(tag)
                elif found is None:
                    found = (candidate, by)
        else:
            for candidate in [image["id"], image.get("config_digest")] + sorted(present_ids):
                if candidate in present_ids and _how_matched(image, candidate, image_of):
                    found = (candidate, _how_matched(image, candidate, image_of))
                    break
        if found is None and image["id"] not in present_ids:
            missing["ids"].append(image["id"])
        elif found is not None:
            matched.append(
                {
                    "tags": list(image["tags"]),
                    "archived_id": image["id"],
                    "id": found[0],
                    "by": found[1],
                }
            )
    missing = {"ids": sorted(missing["ids"]), "tags": sorted(missing["tags"])}
    return missing, sorted(matched, key=lambda entry: entry["archived_id"])


def _instant(created):
    """An image's ``Created`` time, comparable across engines that print it with more or fewer
    digits: ``2026-12-02T04:53:32.1849Z`` and ``...32.184900000Z`` are one instant."""
    text = str(created or "")
    seconds, _dot, fraction = text.rstrip("Z").partition(".")
    return seconds, fraction.rstrip("0")


def config_digests_from_save(entries):
    """``({tag: config digest}, {config digests})`` from the ``manifest.json`` of a
    ``docker save`` tar (``entries``: its list): ``Config`` is ``blobs/sha256/<hex>`` (OCI
    layout, Docker 25 and later) or ``<hex>.json`` (older)."""
    by_tag, digests = {}, set()
    for entry in entries if isinstance(entries, list) else []:
        config = os.path.basename(str((entry or {}).get("Config") or ""))
        hexdigest = config[: -len(".json")] if config.endswith(".json") else config
        if len(hexdigest) != 64:
            continue
        digest = "sha256:" + hexdigest
        digests.add(digest)
        for tag in entry.get("RepoTags") or ():
            by_tag[tag] = digest
    return by_tag, digests


def with_config_digests(images, by_tag, digests):
    """``images`` with ``config_digest`` set from a save's manifest: through a tag, or the ID
    itself when it is one (a graphdriver's untagged image); None when unknown."""
    result = []
    for image in images:
        digest = next((by_tag[tag] for tag in image["tags"] if tag in by_tag), None)
        if digest is None and image["id"] in digests:
            digest = image["id"]
        result.append(dict(image, config_digest=digest))
    return result


def describe_missing(missing):
    """``match_in_engine``'s ``missing`` as a phrase."""
    parts = []
    if missing["ids"]:
        parts.append("image IDs %s" % ", ".join(missing["ids"]))
    if missing["tags"]:
        parts.append("tags %s" % ", ".join(missing["tags"]))
    return "; ".join(parts) or "nothing"


def describe_image(image):
    """``busybox:latest, local/busybox:1 (sha256:...)`` or the ID alone when untagged."""
    if image["tags"]:
        return "%s (%s)" % (", ".join(image["tags"]), image["id"])
    return "%s (untagged)" % image["id"]


def containers_left_behind(containers):
    """The containers an archive of images does not carry, sorted by name: ``id``, ``name``,
    ``image``, ``state``, from ``GET /containers/json?all=1`` entries."""
    entries = []
    for container in containers:
        names = container.get("Names") or []
        name = names[0].lstrip("/") if names else container.get("Id", "")[:12]
        entries.append(
            {
                "id": container.get("Id"),
                "name": name,
                "image": container.get("Image"),
                "state": container.get("State"),
            }
        )
    return sorted(entries, key=lambda entry: entry["name"])


def archive_paths(directory):
    """``(tar path, manifest path)`` of an archive directory."""
    return os.path.join(directory, TAR_NAME), os.path.join(directory, MANIFEST_NAME)


# ---- the live system -----------------------------------------------------------------------


class ImageEngineClient(ContainerEngineClient):
    """ContainerEngineClient plus the image calls, and the two streamed transfers (save into a
    file, load from one) that must not hold an archive in memory."""

    def image_ids(self):
        """GET /images/json?all=1: the IDs of every image, intermediate ones included."""
        answer = self.call("GET", "/images/json?all=1")
        if not isinstance(answer, list):
            raise EngineUnavailable(
                "the Engine API on %s answered /images/json with something other than a list"
                % self.socket_path
            )
        return answer

    def _stream(self, method, path, body=None, length=None, content_type=None):
        connection = unix_http_connection(self.socket_path, self.timeout)
        connection.blocksize = CHUNK
        headers = {"Host": "docker"}
        if content_type:
            headers["Content-Type"] = content_type
        if length is not None:
            headers["Content-Length"] = str(length)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
        except FileNotFoundError:
            connection.close()
            raise EngineUnavailable("no Docker engine socket at %s" % self.socket_path) from None
        except ConnectionRefusedError:
            connection.close()
            raise EngineUnavailable(
                "nothing listens on %s (is dockerd running?)" % self.socket_path
            ) from None
        except socket.timeout:
            connection.close()
            raise EngineUnavailable(
                "the engine on %s did not answer %s %s within %s s"
                % (self.socket_path, method, path.split("?")[0], self.timeout)
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise EngineUnavailable(
                "Engine API %s %s on %s failed: %s"
                % (method, path.split("?")[0], self.socket_path, exc)
            ) from None
        except BaseException:
            # Such as the body refusing to send its end (CheckedBody): the engine gets a
            # broken-off request.
            connection.close()
            raise
        if response.status != 200:
            raw = response.read()
            connection.close()
            raise EngineError(
                "Engine API %s %s on %s answered HTTP %d: %s"
                % (
                    method,
                    path.split("?")[0],
                    self.socket_path,
                    response.status,
                    _error_message(raw),
                ),
                _error_message(raw),
            )
        return connection, response

    def save_images(self, names, stream):
        """GET /images/get?names=...: write the tar into the binary file ``stream``; return
        ``(size, sha256)`` of what was written."""
        query = "&".join("names=%s" % quote(name, safe="") for name in names)
        connection, response = self._stream("GET", "/images/get?" + query)
        digest = hashlib.sha256()
        size = 0
        try:
            while True:
                try:
                    block = response.read(CHUNK)
                except socket.timeout:
                    raise EngineUnavailable(
                        "the engine on %s stopped sending the images for %s s"
                        % (self.socket_path, self.timeout)
                    ) from None
                except (OSError, http.client.HTTPException) as exc:
                    raise EngineUnavailable(
                        "the engine on %s broke off sending the images: %s"
                        % (self.socket_path, exc)
                    ) from None
                if not block:
                    break
                stream.write(block)
                digest.update(block)
                size += len(block)
        finally:
            connection.close()
        return size, digest.hexdigest()

    def load_images(self, body, length, tar_path):
        """POST /images/load with ``length`` bytes read from ``body`` (a binary file object,
        the tar at ``tar_path``); return the engine's messages (``Loaded image: ...``).
        EngineError when the engine reports an error in its stream."""
        connection, response = self._stream(
            "POST",
            "/images/load?quiet=1",
            body=body,
            length=length,
            content_type="application/x-tar",
        )
        try:
            raw = response.read()
        except socket.timeout:
            raise EngineUnavailable(
                "the engine on %s did not finish loading %s within %s s"
                % (self.socket_path, tar_path, self.timeout)
            ) from None
        finally:
            connection.close()
        messages = []
        decoder = json.JSONDecoder()
        text = raw.decode("utf-8", "replace")
        position = 0
        while position < len(text):
            while position < len(text) and text[position].isspace():
                position += 1
            if position >= len(text):
                break
            try:
                entry, position = decoder.raw_decode(text, position)
            except ValueError:
                messages.append(text[position:].strip())
                break
            if isinstance(entry, dict) and entry.get("error"):
                raise EngineError(
                    "the engine on %s refused to load %s: %s"
                    % (self.socket_path, tar_path, entry["error"]),
                    entry["error"],
                )
            if isinstance(entry, dict) and entry.get("stream"):
                messages.append(entry["stream"].strip())
        return messages


def read_engine_images(client):
    """Every image ``docker image ls`` shows, inspected (see ``images_from_inspections``)."""
    inspections = []
    for summary in client.images():
        try:
            inspections.append(client.inspect_image(summary["Id"]))
        except EngineNotFound:
            continue  # removed meanwhile
    return images_from_inspections(inspections)


def read_tag_targets(client):
    """``(present IDs, {tag: ID})`` of the engine, intermediate images included."""
    present, targets = set(), {}
    for summary in client.image_ids():
        present.add(summary["Id"])
        for tag in image_tags(summary.get("RepoTags")):
            targets[tag] = summary["Id"]
    return present, targets


def image_reader(client):
    """``image_of(id)`` for ``match_in_engine``: an engine image's ``layers`` and ``created``
    time, asked once each."""
    known = {}

    def image_of(image_id):
        if image_id not in known:
            try:
                answer = client.inspect_image(image_id)
            except EngineNotFound:
                answer = {}
            known[image_id] = {
                "layers": list((answer.get("RootFS") or {}).get("Layers") or []),
                "created": answer.get("Created"),
            }
        return known[image_id]

    return image_of


def read_engine(client):
    """``{driver, version, data_root}`` of the running engine."""
    info = client.info() or {}
    version = client.version() or {}
    return {
        "driver": info.get("Driver"),
        "version": version.get("Version"),
        "data_root": info.get("DockerRootDir"),
    }


def open_archive_file(path):
    """``(binary file, stat)`` of the regular file at ``path``, opened once and never through a
    symbolic link (an archive directory may be one a link or a swap could redirect).
    FileNotFoundError when it is missing; ArchiveError naming the path otherwise."""
    try:
        # O_NONBLOCK: a FIFO in place of the file must not hang the open.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ArchiveError(
                "%s is a symbolic link, which an archive never holds: nothing was loaded; "
                "put the file itself in the archive directory, or save the images again" % path
            ) from None
        raise ArchiveError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    handle = os.fdopen(fd, "rb")
    try:
        found = os.fstat(handle.fileno())
        if not stat.S_ISREG(found.st_mode):
            raise ArchiveError(
                "%s is not a regular file: nothing was loaded; save the images again" % path
            )
    except BaseException:
        handle.close()
        raise
    return handle, found


def read_manifest(directory):
    """The checked manifest of the archive in ``directory``; ArchiveError when it is missing
    or damaged."""
    tar_path, manifest_path = archive_paths(directory)
    try:
        handle, _found = open_archive_file(manifest_path)
        with handle:
            raw = handle.read()
    except FileNotFoundError:
        raise ArchiveError(
            "no image archive at %s (%s is missing): save the images first with state=saved"
            % (directory, manifest_path)
        ) from None
    except OSError as exc:
        raise ArchiveError("cannot read %s: %s" % (manifest_path, exc.strerror or exc)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArchiveError(
            "%s is not UTF-8 text (%s): the archive is damaged; save the images again"
            % (manifest_path, exc)
        ) from None
    return parse_manifest(text, manifest_path)


def read_existing_manifest(directory):
    """The manifest of a complete archive in ``directory`` (its tar present with the size the
    manifest records), or None."""
    tar_path, manifest_path = archive_paths(directory)
    if not os.path.exists(manifest_path):
        return None
    try:
        manifest = read_manifest(directory)
    except ArchiveError:
        return None
    try:
        found = os.lstat(tar_path)
    except OSError:
        return None
    if not stat.S_ISREG(found.st_mode) or found.st_size != manifest["tar"]["size"]:
        return None
    return manifest


def sha256_of_stream(handle):
    """The sha256 of what is left to read in the binary file ``handle``, read in blocks."""
    digest = hashlib.sha256()
    while True:
        block = handle.read(CHUNK)
        if not block:
            break
        digest.update(block)
    return digest.hexdigest()


def open_checked_tar(directory, manifest):
    """The archive's tar, opened once and checked: a regular file (never reached through a
    symbolic link), owned by the user the task runs as and writable by no one else, with the
    size and sha256 its manifest records. Returns the open binary file at its start: load
    from it (``load_checked_tar``), never from the path again, so that what the engine gets
    is what was checked even when the name is swapped meanwhile. ArchiveError otherwise."""
    tar_path, manifest_path = archive_paths(directory)
    try:
        handle, found = open_archive_file(tar_path)
    except FileNotFoundError:
        raise ArchiveError(
            "%s is missing although %s lists it: the archive is incomplete; save the images "
            "again" % (tar_path, manifest_path)
        ) from None
    try:
        if found.st_uid != os.geteuid() or found.st_mode & 0o022:
            raise ArchiveError(
                "%s belongs to uid %d and has mode %04o: another user could change it after "
                "it was checked, so nothing was loaded; make it owned by uid %d and writable "
                "by no one else (chown, chmod go-w), or save the images again"
                % (tar_path, found.st_uid, stat.S_IMODE(found.st_mode), os.geteuid())
            )
        if found.st_size != manifest["tar"]["size"]:
            raise ArchiveError(
                "%s has %d bytes, %s records %d: the archive is damaged; nothing was loaded"
                % (tar_path, found.st_size, manifest_path, manifest["tar"]["size"])
            )
        actual = sha256_of_stream(handle)
        if actual != manifest["tar"]["sha256"]:
            raise ArchiveError(
                "%s has sha256 %s, %s records %s: the archive is damaged; nothing was loaded"
                % (tar_path, actual, manifest_path, manifest["tar"]["sha256"])
            )
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return handle


def check_tar(directory, manifest):
    """Raise ArchiveError unless the archive's tar passes ``open_checked_tar``."""
    open_checked_tar(directory, manifest).close()


class CheckedBody:
    """The body of a load: ``length`` bytes of an open tar, hashed again on the way. The last
    block is handed over only when the digest is still ``sha256``; otherwise ArchiveError is
    raised before it, the request is broken off and the engine, which unpacks the whole tar
    before it loads anything, loads nothing."""

    def __init__(self, handle, length, sha256, tar_path):
        self.handle = handle
        self.remaining = length
        self.sha256 = sha256
        self.tar_path = tar_path
        self.digest = hashlib.sha256()

    def read(self, size=-1):
        if self.remaining <= 0:
            return b""
        want = self.remaining if size is None or size < 0 else min(size, self.remaining)
        block = self.handle.read(want)
        self.digest.update(block)
        self.remaining -= len(block)
        if len(block) < want or (self.remaining == 0 and self.digest.hexdigest() != self.sha256):
            raise ArchiveError(
                "%s changed while it was sent to the engine; the load was broken off before "
                "its end and nothing was loaded: keep other processes away from the archive "
                "and run again" % self.tar_path
            )
        return block


def load_checked_tar(client, handle, directory, manifest):
    """Load the tar ``open_checked_tar`` returned (``handle``) into the engine behind
    ``client``, from that same open file; the engine's messages."""
    tar_path = archive_paths(directory)[0]
    size, sha256 = manifest["tar"]["size"], manifest["tar"]["sha256"]
    return client.load_images(CheckedBody(handle, size, sha256, tar_path), size, tar_path)


def room_for_archive(directory, need_bytes):
    """``_capacity.fit_on_target`` for ``need_bytes`` on the filesystem that will hold
    ``directory``, with ``checked_path`` (the existing path examined) and ``available``."""
    checked = _mountinfo.nearest_existing_ancestor(os.path.abspath(directory))
    try:
        st = os.statvfs(checked)
    except OSError as exc:
        raise ArchiveError(
            "cannot read the filesystem of %s: %s" % (checked, exc.strerror or exc)
        ) from None
    byte_fig = _capacity.byte_figures(st)
    inode_fig = _capacity.inode_figures(st)
    fit = _capacity.fit_on_target(
        need_bytes,
        ARCHIVE_INODES,
        byte_fig["available"],
        inode_fig["free"] if inode_fig["limited"] else None,
        ARCHIVE_MARGIN_PERCENT,
    )
    fit["checked_path"] = checked
    fit["available"] = byte_fig["available"]
    return fit


def write_archive(client, directory, images, engine):
    """Stream the images into ``directory``: the tar to a temporary file, flushed and renamed
    into place, then the manifest. Returns the manifest. A failure removes the temporary file
    and leaves an existing archive as it was."""
    tar_path, manifest_path = archive_paths(directory)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ArchiveError("cannot create %s: %s" % (directory, exc.strerror or exc)) from None
    handle, temporary = tempfile.mkstemp(prefix="." + TAR_NAME + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            size, sha256 = client.save_images(names_to_save(images), stream)
            stream.flush()
            os.fsync(stream.fileno())
        if os.path.exists(manifest_path):
            # The old manifest must not describe the new tar, even for a moment.
            os.unlink(manifest_path)
        os.replace(temporary, tar_path)
    except OSError as exc:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        if exc.errno == errno.ENOSPC:
            raise ArchiveError(
                "%s filled up while the images were written; nothing was kept: make room or "
                "choose another archive directory" % directory
            ) from None
        raise ArchiveError("cannot write %s: %s" % (tar_path, exc.strerror or exc)) from None
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    images = with_config_digests(images, *config_digests_from_save(read_save_manifest(tar_path)))
    manifest = build_manifest(images, size, sha256, engine, created)
    try:
        write_text_atomically(manifest_path, json.dumps(manifest, indent=2) + "\n", 0o600)
    except OSError as exc:
        raise ArchiveError("cannot write %s: %s" % (manifest_path, exc.strerror or exc)) from None
    return manifest


def read_save_manifest(tar_path):
    """The ``manifest.json`` list inside a ``docker save`` tar, or None when it cannot be read
    (the archive is then kept without configuration digests)."""
    try:
        with tarfile.open(tar_path, mode="r:") as tar:
            member = tar.getmember("manifest.json")
            handle = tar.extractfile(member)
            if handle is None or member.size > 64 << 20:
                return None
            return json.loads(handle.read().decode("utf-8"))
    except (OSError, KeyError, ValueError, tarfile.TarError):
        return None


def remove_archive(directory):
    """Remove the archive's tar and manifest, then the directory when nothing else is in it.
    Returns True when the directory itself is gone."""
    tar_path, manifest_path = archive_paths(directory)
    for path in (manifest_path, tar_path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(directory)
    except OSError:
        return False
    return True
