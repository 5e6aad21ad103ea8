#!/usr/bin/python
# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_archive
short_description: Save every image of a Docker engine to an archive and load it back
version_added: 0.1.0
description:
  - Carries the images of a Docker engine over a change of storage driver, which hides them
    (they stay on disk under the old driver's directory, but the engine no longer sees them).
  - O(state=saved) writes every image the engine lists (all tags of each; untagged images by
    ID) to an archive directory, through the Engine API (C(GET /images/get), the
    C(docker save) format). The tar is streamed into a temporary file in that directory, flushed
    to disk and renamed into place; then C(manifest.json) records the image IDs, their tags, the
    tar's size and sha256, and the engine's driver, version and data-root.
  - Before writing, the room on the archive's filesystem is checked against the images' size
    (each layer once as far as the images tell) plus a margin of 10%, at least 1 GiB, as
    M(dockerhost.storage.capacity_info) judges a target. Without room the task fails and
    writes nothing.
  - A complete archive whose manifest lists exactly the engine's images (IDs and tags) is not
    written again. An archive that holds images the engine does not have is never overwritten.
  - O(state=loaded) checks the tar against the manifest's size and sha256, posts it to the
    engine (C(POST /images/load)), then checks that every image ID and every tag of the
    manifest is present in the engine, and fails naming what is missing. Nothing is loaded
    when every image and tag is already there.
  - The tar is opened once, never through a symbolic link, and what is posted is read from
    that same open file, so a file renamed over C(images.tar) after the check is not what the
    engine gets. The tar must be a regular file owned by the user the task runs as and
    writable by no one else, or nothing is loaded; its sha256 is computed again while it is
    sent, and the end of the tar is held back (so the engine loads nothing) when it changed.
    C(manifest.json) is not read through a symbolic link either.
  - Containers are not carried over. O(state=saved) lists them in RV(containers).
  - Needs neither the docker CLI nor the docker SDK on the managed host.
author:
  - dockerhost.storage maintainers (!UNKNOWN)
options:
  state:
    description:
      - V(saved) writes the engine's images to O(path); V(loaded) loads them from O(path).
    type: str
    required: true
    choices: [saved, loaded]
  path:
    description:
      - The archive directory; it holds C(images.tar) and C(manifest.json). O(state=saved)
        creates it (mode 0700) when it does not exist.
    type: path
    required: true
  remove_archive_after_load:
    description:
      - With O(state=loaded), remove C(images.tar) and C(manifest.json) (and the directory when
        nothing else is in it) once every image and tag was found in the engine.
      - The archive is kept whenever the check fails.
    type: bool
    default: false
  timeout:
    description:
      - Seconds the engine may stay silent during a call; loading a large archive can keep it
        silent for minutes.
    type: int
    default: 600
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dockerhost.storage.engine
  - dockerhost.storage.engine_lock
attributes:
  check_mode:
    support: full
    details:
      - Reports what would be saved or loaded, with sizes; O(state=loaded) also checks the
        tar's sha256.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Save and load on the same engine keep image IDs, so the check after a load is exact.
    Repository digests (C(RepoDigests)) are not part of the C(docker save) format and are lost.
  - Loading writes the layers again under the new driver's directory, which needs about the
    images' size on the data-root's filesystem; the old driver's directory is not removed.
  - Needs root to reach the Engine API socket.
seealso:
  - module: dockerhost.storage.daemon_config
  - name: docker image save
    description: The archive format.
    link: https://docs.docker.com/reference/cli/docker/image/save/
"""

EXAMPLES = r"""
- name: Save every image before the storage driver changes
  dockerhost.storage.image_archive:
    state: saved
    path: /var/lib/docker.image-archive
  register: saved

- name: Show the containers that will not be carried over
  ansible.builtin.debug:
    msg: "{{ saved.containers | map(attribute='name') | list }}"

- name: Load them after the engine restarted on the new driver, then remove the archive
  dockerhost.storage.image_archive:
    state: loaded
    path: /var/lib/docker.image-archive
    remove_archive_after_load: true
"""

RETURN = r"""
path:
  description: The archive directory.
  returned: always
  type: str
  sample: /var/lib/docker.image-archive
images:
  description:
    - The images saved, or that would be (O(state=saved)); the images of the manifest
      (O(state=loaded)). Each C(id), C(tags) (sorted; empty for an untagged image) and C(size)
      (bytes of all its layers).
  returned: always
  type: list
  elements: dict
  sample: [{id: "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741", tags: ["busybox:latest"], size: 4261550}]
size:
  description:
    - O(state=saved) the bytes the images' layers take, each layer counted once as far as the
      images tell (the figure the room is checked against); O(state=loaded) the tar's size.
  returned: always
  type: int
  sample: 4261550
room:
  description:
    - The room check on the archive's filesystem (O(state=saved) when something is to be
      written, else null) as C(capacity_info) judges a target; C(checked_path) (the existing
      path examined), C(available) (bytes), C(fits), C(need) (C(bytes), C(inodes)),
      C(margin) (C(percent), C(bytes), C(inodes)), C(reasons).
  returned: always
  type: dict
  sample:
    checked_path: /var/lib
    available: 52613349376
    fits: true
    need: {bytes: 1078003374, inodes: 10004}
    margin: {percent: 10.0, bytes: 1073741824, inodes: 10000}
    reasons: []
archive:
  description:
    - The archive on disk after the task (in check mode, the one already there), with C(tar) and C(manifest)
      (paths), C(size) and C(sha256) of the tar, C(created), C(engine) (C(driver), C(version),
      C(data_root) at save time). Null when there is none.
  returned: always
  type: dict
  sample:
    tar: /var/lib/docker.image-archive/images.tar
    manifest: /var/lib/docker.image-archive/manifest.json
    size: 4270080
    sha256: 0c1b2ff5e0f38e3c62a7a0e55d2a7b2a0c6a1c43b1b7cf2b0bca8a4a3c1f2d9e
    created: "2026-11-24T05:30:00Z"
    engine: {driver: vfs, version: 20.10.24+dfsg1, data_root: /var/lib/docker}
containers:
  description:
    - O(state=saved) the containers of the engine, which an archive of images does not carry
      (after a change of driver they stay on disk under the old driver's directory, unseen),
      each with C(id), C(name), C(image), C(state). Empty with O(state=loaded).
  returned: always
  type: list
  elements: dict
  sample: [{id: "8c2e06607696bd4afb0a3a7e5d2f9f4d3d06a5b1e3d2c1b0a9f8e7d6c5b4a392", name: web, image: "nginx:latest", state: exited}]
missing:
  description:
    - O(state=loaded) what of the manifest the engine lacked before the load (C(ids),
      C(tags)); a tag that names another image counts as missing. Empty lists with
      O(state=saved).
  returned: always
  type: dict
  sample: {ids: ["sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741"], tags: ["busybox:latest"]}
matched:
  description:
    - O(state=loaded) where the engine holds each archived image after the load (or already
      held it), and how it was recognised (C(by)) - C(id) (the same image ID, as when the
      archive comes from the same kind of image store), C(config digest) (a graphdriver names
      an image by its configuration digest), or C(layers) (the same tags on an image with the
      same layer diff IDs and creation time, as the containerd image store gives an image its
      manifest digest as ID).
    - So images move between a graphdriver (such as overlay2) and the containerd image store
      in both directions, under new IDs.
  returned: always
  type: list
  elements: dict
  sample:
    - tags: ["busybox:latest"]
      archived_id: "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741"
      id: "sha256:88bb9c76184f6a377ded4d3f684a423e9e8c0a29c14701e679d709a0a86113b0"
      by: layers
loaded:
  description: The engine's messages about the load (C(Loaded image ...)); empty when nothing was loaded.
  returned: always
  type: list
  elements: str
  sample: ["Loaded image: busybox:latest"]
removed:
  description: Whether the archive was removed (O(remove_archive_after_load)), or would be in check mode.
  returned: always
  type: bool
  sample: true
engine:
  description: The engine the task ran against, C(driver), C(version), C(data_root).
  returned: always
  type: dict
  sample: {driver: overlay2, version: 20.10.24+dfsg1, data_root: /var/lib/docker}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _image_archive_transfer,
    _module_options,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError


def argument_spec():
    return _module_options.argument_spec(
        dict(
            state=dict(type="str", required=True, choices=["saved", "loaded"]),
            path=dict(type="path", required=True),
            remove_archive_after_load=dict(type="bool", default=False),
            timeout=dict(type="int", default=600),
        ),
        _module_options.DOCKER_HOST,
        _module_options.ENGINE_LOCK,
    )


def run(module):
    try:
        result = _image_archive_transfer.transfer(module.params, module.check_mode)
    except StorageError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    module.exit_json(**result)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run(module)


if __name__ == "__main__":
    main()
