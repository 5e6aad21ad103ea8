#!/usr/bin/python
# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: reclaim
short_description: Give bytes and inodes back on Docker's filesystem by policy, never what is in use
version_added: 0.2.0
description:
  - Frees space and inodes on the filesystem of the engine's data-root (and of containerd's
    root, where the images live there) until both targets hold, walking an ordered ladder of
    steps and stopping as soon as the targets hold. Nothing is removed when they already hold.
  - "The ladder, in order: V(build_cache) (BuildKit's cache, least recently used first, keeping
    O(build_cache_keep)); V(dangling_images); V(stopped_containers); V(unused_images) (tagged
    images no container of any state uses); V(orphaned_layers) (layer directories of the
    overlay2 store that no image, no container, no layerdb entry, no overlay mount and no build
    cache record names); V(container_logs) (json-file logs truncated, never deleted) and
    V(anonymous_volumes). The last two run only when listed in O(steps)."
  - Within a step objects go oldest first (logs biggest first), one at a time, and the
    filesystems are measured with C(statvfs) after each; an object that would not free what is
    lacking (a log when only inodes are short) is left alone.
  - Everything goes through the Engine API, which refuses to remove what a container uses; an
    orphaned layer directory is proven unreferenced once more, from a fresh read of the store,
    the engine and the mount table, just before it is removed. Named volumes are never touched,
    nor anything carrying O(keep_label).
  - Check mode lists every object each step would remove, with the bytes and inodes it is
    expected to free, and the expected free figures after each step. Diff mode shows the same.
author:
  - dockerhost.storage maintainers (!UNKNOWN)
options:
  target_free_bytes_percent:
    description:
      - Free bytes to reach on each filesystem, in percent of its size (available bytes, as
        C(df) shows them).
      - The default is the audit's warning threshold (capacity_info's C(bytes_warn_percent)).
    type: float
    default: 10
  target_free_inodes_percent:
    description:
      - Free inodes to reach on each filesystem, in percent of its inodes. A filesystem without
        an inode limit (btrfs) always meets it.
      - The default is the audit's warning threshold (capacity_info's C(inode_warn_percent)).
    type: float
    default: 10
  steps:
    description:
      - The steps allowed to run. They always run in the ladder's order, whatever the order
        given here.
    type: list
    elements: str
    default: [build_cache, dangling_images, stopped_containers, unused_images, orphaned_layers]
  build_cache_keep:
    description:
      - Build cache to keep, the most recently used; a size such as V(2GiB) or V(500MB).
    type: str
    default: "0"
  build_cache_unused_for:
    description:
      - Only build cache unused for at least this long goes (V(30m), V(24h), V(7d), V(1h30m)).
    type: str
    default: 0s
  dangling_images_older_than:
    description:
      - Only dangling images created at least this long ago go (a build may still be tagging a
        younger one).
    type: str
    default: 1h
  stopped_containers_older_than:
    description:
      - Only containers stopped at least this long ago go (never started ones count from their
        creation).
    type: str
    default: 24h
  unused_images_older_than:
    description:
      - Only unused tagged images created at least this long ago go.
    type: str
    default: 7d
  orphaned_layers_older_than:
    description:
      - Only orphaned layer directories unchanged for at least this long go (the newer ctime of
        the directory and its C(diff)), since a pull or a build registers a layer only after
        writing it.
    type: str
    default: 1h
  container_logs_larger_than:
    description:
      - With V(container_logs) in O(steps), the json-file logs (with their rotated files) larger
        than this are truncated to nothing. The engine keeps writing to the same file.
    type: str
    default: 100MiB
  anonymous_volumes_older_than:
    description:
      - With V(anonymous_volumes) in O(steps), only anonymous volumes no remaining container
        uses and created at least this long ago go.
    type: str
    default: 7d
  keep_label:
    description:
      - Containers, images and volumes carrying this label (whatever its value) are never
        removed.
    type: str
    default: org.dockerhost-storage.keep
  data_root:
    description:
      - The engine's data-root, as a check that the engine in front of the module is the
        expected one; the task fails when it differs from the one the engine reports.
      - Defaults to the engine's.
    type: path
  containerd_root:
    description:
      - containerd's root, judged as a second filesystem when it is not on the data-root's.
      - Defaults, when the engine keeps its images in containerd, to the root of the containerd
        that keeps them (dockerd's own, C(<data-root>/containerd/daemon), or the host's, from
        C(/etc/containerd/config.toml)).
    type: path
  timeout:
    description:
      - Seconds to wait for each Engine API answer (removing a large image can take a while)
        before the run stops, reporting what it removed so far.
    type: int
    default: 60
  mountinfo_path:
    description:
      - The mount table that proves an orphaned layer is not mounted. Use
        C(/proc/<dockerd pid>/mountinfo) when dockerd runs in a mount namespace of its own.
    type: path
    default: /proc/self/mountinfo
  fail_when_unreached:
    description:
      - Fail the task when the targets are not reached with the allowed steps, naming the step
        that would have come next. With V(false) the result says so in RV(reached).
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dockerhost.storage.engine
  - dockerhost.storage.engine_lock
attributes:
  check_mode:
    support: full
    details: Lists what each step would remove and the expected free figures after it; the
      expectations come from walking each object's directories.
  diff_mode:
    support: full
    details: The free figures and the objects, before and after.
  platform:
    platforms: posix
notes:
  - Needs root to reach the Engine API socket and the data-root.
  - On the containerd image store what an image or a container frees is not known in advance;
    such objects are listed without figures, and the measured figures still decide when to stop.
  - The steps, their order and how each object is proven safe are described in C(docs/reclaim.md)
    in the collection.
seealso:
  - module: dockerhost.storage.capacity_info
  - module: dockerhost.storage.mounts_info
"""

EXAMPLES = r"""
- name: Free inodes and bytes until 15% of each is free, with the default steps
  dockerhost.storage.reclaim:
    target_free_bytes_percent: 15
    target_free_inodes_percent: 15

- name: Show what would go, without removing anything
  dockerhost.storage.reclaim:
    target_free_inodes_percent: 20
  check_mode: true
  register: plan

- name: Allow every step, truncating logs over 1 GiB and keeping 2 GiB of build cache
  dockerhost.storage.reclaim:
    steps: [build_cache, dangling_images, stopped_containers, unused_images, orphaned_layers,
            container_logs, anonymous_volumes]
    build_cache_keep: 2GiB
    container_logs_larger_than: 1GiB
    stopped_containers_older_than: 3d
"""

RETURN = r"""
reached:
  description: Whether both targets hold on every filesystem at the end (expected, in check mode).
  returned: always
  type: bool
  sample: true
targets:
  description: The targets, in percent.
  returned: always
  type: dict
  sample: {free_bytes_percent: 10.0, free_inodes_percent: 20.0}
data_root:
  description: The engine's data-root.
  returned: always
  type: str
  sample: /var/lib/docker
engine:
  description: The engine's version, storage driver and image store.
  returned: always
  type: dict
  sample: {version: 20.10.24+dfsg1, driver: overlay2, image_store: graphdriver}
before:
  description:
    - Per filesystem (C(data_root), C(containerd_root)), its path and free figures at the
      start, measured with statvfs.
  returned: always
  type: dict
  sample:
    data_root: {path: /var/lib/docker, role: data_root, bytes_total: 1056858112,
                bytes_free: 800000000, bytes_free_percent: 75.7, inodes_total: 4096,
                inodes_free: 123, inodes_free_percent: 3.0}
after:
  description: The same figures at the end (measured), or as expected (check mode).
  returned: always
  type: dict
freed:
  description: Per filesystem, the bytes and inodes freed (C(after) less C(before)).
  returned: always
  type: dict
  sample: {data_root: {bytes: 31457280, inodes: 1712}}
steps:
  description: One entry per step that ran, in order.
  returned: always
  type: list
  elements: dict
  contains:
    step:
      description: The step's name.
      type: str
    removed:
      description:
        - The objects removed (would be removed, in check mode), each with C(kind)
          (V(build_cache), V(image), V(container), V(layer), V(log), V(volume)), C(id), C(name),
          the C(bytes) and C(inodes) it was expected to free (null when not known) and
          C(age_seconds).
        - In the order they went within the step. When the planned objects did not free
          enough, a run goes on with the other candidates in ladder order; those are listed
          under their own step too.
      type: list
      elements: dict
    kept:
      description: Objects the step chose but could not remove, each with the C(reason) (the
        engine's refusal, or that something names it now).
      type: list
      elements: dict
    expected:
      description:
        - The free figures per filesystem expected after the step. In check mode they add up
          from RV(before); in a real run they start from what was measured when the step began.
      type: dict
    freed:
      description: Per filesystem, the bytes and inodes the step freed, measured before and
        after it. Not in check mode.
      type: dict
    after:
      description: The free figures per filesystem measured after the step. Not in check mode.
      type: dict
removed_objects:
  description: How many objects were removed (would be, in check mode).
  returned: always
  type: int
  sample: 12
next_step:
  description: When the targets are not reached, the step that would have come next (null when
    every step ran).
  returned: always
  type: str
  sample: container_logs
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _module_options,
    _reclaim,
    _reclaim_policy,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError


def argument_spec():
    own = dict(
        target_free_bytes_percent=dict(
            type="float", default=_reclaim_policy.DEFAULT_TARGET_PERCENT
        ),
        target_free_inodes_percent=dict(
            type="float", default=_reclaim_policy.DEFAULT_TARGET_PERCENT
        ),
        steps=dict(type="list", elements="str", default=list(_reclaim_policy.DEFAULT_STEPS)),
        keep_label=dict(type="str", default=_reclaim_policy.DEFAULT_KEEP_LABEL),
        data_root=dict(type="path"),
        containerd_root=dict(type="path"),
        mountinfo_path=dict(type="path", default="/proc/self/mountinfo"),
        timeout=dict(type="int", default=60),
        fail_when_unreached=dict(type="bool", default=True),
    )
    for name, default in list(_reclaim_policy.AGE_OPTIONS.items()) + list(
        _reclaim_policy.SIZE_OPTIONS.items()
    ):
        own[name] = dict(type="str", default=default)
    return _module_options.argument_spec(
        own, _module_options.DOCKER_HOST, _module_options.ENGINE_LOCK
    )


def run(module):
    try:
        result, failure = _reclaim.reclaim(module.params, module.check_mode)
    except StorageError as exc:
        module.fail_json(msg=str(exc), **dict({"changed": False}, **exc.result))
    if module._diff:
        result["diff"] = _reclaim.diff(result)
    if failure and module.params["fail_when_unreached"]:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run(module)


if __name__ == "__main__":
    main()
