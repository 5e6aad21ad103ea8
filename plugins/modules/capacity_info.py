#!/usr/bin/python
# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: capacity_info
short_description: Free inodes and bytes where Docker keeps its data
version_added: 0.1.0
description:
  - Reports the filesystems under Docker's data-root, under containerd's root (when the engine
    keeps images in the containerd image store, or the directory exists) and under any extra
    O(paths) - device, mount point, type and options, bytes and inodes as C(df -B1) and
    C(df -i) give them, and a status of C(ok), C(warn) or C(fail) against thresholds of free
    space.
  - Says whether each path is on a filesystem of its own, apart from C(/) (CIS Docker
    Benchmark 1.1.1, for the real data-root rather than a fixed path).
  - On xfs, inodes are allocated on demand, so the inode total moves with free space; the
    report says so and gives the ceiling that C(imaxpct) sets, read from the superblock, or
    from C(xfs_info) when the device cannot be read.
  - With O(breakdown=true), walks the data-root and tells where its inodes and bytes went - per
    top-level directory and for the layers with the most inodes - counted as
    C(du -x --inodes) and C(du -x -B1) count them.
  - With O(target), tells whether the data-root (and containerd's root when the engine uses the
    containerd image store) would fit on another filesystem, as a preflight for moving it.
  - Never changes the host.
author:
  - dockerhost.storage maintainers (!UNKNOWN)
options:
  data_root:
    description:
      - The data-root to examine.
      - Defaults to the data-root the running engine reports, else C(data-root) in the daemon
        configuration file, else C(/var/lib/docker). It must exist.
    type: path
  paths:
    description:
      - More directories to report, such as a volume mount or a future data-root. Each must be an
        absolute path that exists.
    type: list
    elements: path
    default: []
  containerd_root:
    description:
      - containerd's root directory.
      - Defaults to C(root) in O(containerd_config), else C(/var/lib/containerd); that default
        is reported only when the engine uses the containerd image store or the directory
        exists. A path given here is always reported and must exist.
    type: path
  containerd_config:
    description:
      - containerd's configuration file, read for its top-level C(root) key.
    type: path
    default: /etc/containerd/config.toml
  breakdown:
    description:
      - Walk the data-root and count inodes and bytes per top-level directory (C(overlay2),
        C(image), C(containers), C(volumes), C(buildkit), ...) and for the O(top_layers) layers
        with the most inodes.
      - Under userns-remap the engine keeps its storage in the remapped root
        C(<data-root>/<uid>.<gid>). Its entries are listed as C(<uid>.<gid>/overlay2) and so on,
        and its layers are counted as layers, beside what an unremapped engine left at the top.
      - Each inode counts once however many hard links it has; bytes are allocated blocks. The
        walk never leaves the data-root's filesystem - mounts inside it (running containers'
        merged directories, C(shm), volumes on other devices, btrfs subvolumes) are not counted,
        as with C(du -x).
      - Memory does not grow with the number of files, only with the number of layers and of
        hard-linked files (one small record each, as C(du) keeps). The walk runs in two
        processes.
    type: bool
    default: false
  top_layers:
    description:
      - How many layers (C(overlay2/<id>) and the like) the breakdown lists, most inodes first.
    type: int
    default: 10
  target:
    description:
      - A directory on another filesystem to check as the destination of the data-root. It may
        not exist yet; its nearest existing ancestor is examined.
      - The data-root fits when the target's available bytes and free inodes cover what the
        data-root uses (measured as the breakdown measures it, containerd's root added when the
        engine uses the containerd image store) plus a margin - O(margin_percent) of the
        used figures, and at least 1 GiB and 10000 inodes.
    type: path
  inode_warn_percent:
    description:
      - A filesystem with less than this percentage of its inodes free gets C(status=warn).
      - Filesystems that do not limit inodes (btrfs) are not judged on inodes.
    type: float
    default: 10
  inode_fail_percent:
    description:
      - A filesystem with less than this percentage of its inodes free gets C(status=fail).
        Must not be above O(inode_warn_percent).
    type: float
    default: 5
  bytes_warn_percent:
    description:
      - A filesystem with less than this percentage of its bytes available (to unprivileged
        users, as C(df) shows in Avail) gets C(status=warn).
    type: float
    default: 10
  bytes_fail_percent:
    description:
      - A filesystem with less than this percentage of its bytes available gets C(status=fail).
        Must not be above O(bytes_warn_percent).
    type: float
    default: 5
  fail_on_threshold:
    description:
      - Fail the task when any reported filesystem has C(status=fail), naming the filesystem and
        the figures. Leave it off to gather figures in an audit; turn it on to gate a play.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dockerhost.storage.engine
  - dockerhost.storage.engine.config_path
  - dockerhost.storage.engine.margin
  - ansible.builtin.action_common_attributes.facts
  - dockerhost.storage.attributes
  - dockerhost.storage.attributes.facts
notes:
  - Needs root to read the data-root, the Engine API socket and the xfs superblock.
  - Figures are read with statvfs at one instant; a busy filesystem may change right after.
seealso:
  - module: dockerhost.storage.driver_support_info
  - name: CIS Docker Benchmark
    description: Item 1.1.1, a separate partition for containers.
    link: https://www.cisecurity.org/benchmark/docker
"""

EXAMPLES = r"""
- name: How full is the filesystem under Docker?
  dockerhost.storage.capacity_info:
  register: capacity

- name: Show status and free inodes of the data-root's filesystem
  ansible.builtin.debug:
    msg: "{{ capacity.filesystems[0].status }}: {{ capacity.filesystems[0].inodes.free }} inodes free"

- name: Gate provisioning on free inodes and bytes (fail below 5% free)
  dockerhost.storage.capacity_info:
    fail_on_threshold: true

- name: Where did the inodes go?
  dockerhost.storage.capacity_info:
    breakdown: true
    top_layers: 5
  register: usage

- name: Would the data-root fit on the new disk?
  dockerhost.storage.capacity_info:
    target: /srv/docker
  register: preflight

- name: Stop before moving when it would not
  ansible.builtin.assert:
    that: preflight.target.fits
    fail_msg: "{{ preflight.target.reasons | join('; ') }}"
"""

RETURN = r"""
data_root:
  description: The data-root examined.
  returned: always
  type: str
  sample: /var/lib/docker
data_root_source:
  description: Where the data-root came from, C(option), C(engine), C(daemon.json) or C(default).
  returned: always
  type: str
  sample: engine
containerd_root:
  description: containerd's root when it was examined, else null.
  returned: always
  type: str
  sample: /var/lib/containerd
containerd_root_source:
  description:
    - Where containerd's root came from, C(option), the configuration file's path, or
      C(default); null when it was not examined.
  returned: always
  type: str
  sample: default
image_store:
  description: Where the running engine keeps images, C(graphdriver) or C(containerd); null without an engine.
  returned: always
  type: str
  sample: graphdriver
engine:
  description: What the Engine API said.
  returned: always
  type: dict
  contains:
    version:
      description: The engine version, or null.
      type: str
      sample: 20.10.24+dfsg1
    running_driver:
      description: The storage driver in use, or null.
      type: str
      sample: overlay2
    problem:
      description: Why the Engine API did not answer, or null.
      type: str
      sample: null
filesystems:
  description: One entry per examined path - the data-root first, then containerd's root, then O(paths).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path examined (symbolic links resolved).
      type: str
      sample: /var/lib/docker
    role:
      description:
        - C(data_root), C(containerd_root) or C(path); C(target) for the filesystem entry inside
          RV(target).
      type: str
      sample: data_root
    mount_point:
      description: Where the filesystem holding the path is mounted.
      type: str
      sample: /var/lib/docker
    device:
      description: The mounted device or source.
      type: str
      sample: /dev/vdb1
    device_number:
      description: The filesystem's device number as mountinfo lists it (major:minor).
      type: str
      sample: "254:17"
    fstype:
      description: The filesystem type.
      type: str
      sample: ext4
    mount_options:
      description: Per-mount options.
      type: str
      sample: rw,relatime
    super_options:
      description: Per-filesystem options.
      type: str
      sample: rw
    separate_from_root:
      description:
        - Whether the path is on another filesystem than C(/) (CIS Docker Benchmark 1.1.1).
          A bind mount from the root filesystem is not separate.
      type: bool
      sample: true
    bytes:
      description:
        - Bytes as C(df -B1) computes them - C(total), C(used) (total minus free), C(free)
          (root's reserve included), C(available) (to unprivileged users); C(used_percent)
          as df's Use% (rounded up), C(available_percent) (available / total), which the
          thresholds judge.
      type: dict
      sample: {total: 52576092160, used: 11036766208, free: 41539325952, available: 38829801472,
               used_percent: 23, available_percent: 73.85}
    inodes:
      description:
        - Inodes as C(df -i) computes them - C(total), C(used), C(free), C(used_percent) as df's
          IUse% (rounded up) and C(free_percent). C(limited) is false on filesystems that do not
          count inodes (btrfs), whose figures are then 0 and percentages null.
      type: dict
      sample: {limited: true, total: 3276800, used: 412003, free: 2864797, used_percent: 13,
               free_percent: 87.43}
    xfs:
      description:
        - On xfs, C(inodes_on_demand) (true), C(imaxpct), C(inode_ceiling) (the most inodes
          imaxpct allows, null when imaxpct is 0 or unknown) and C(geometry_source)
          (C(superblock), C(xfs_info) or null); null on other filesystems.
      type: dict
      sample: {inodes_on_demand: true, imaxpct: 25, inode_ceiling: 20971520, geometry_source: superblock}
    status:
      description: C(ok), C(warn) or C(fail), the worse of the byte and inode levels.
      type: str
      sample: ok
    reasons:
      description: One sentence per figure below a threshold.
      type: list
      elements: str
      sample: ["inodes: 4.1% free (168 of 4096), below the fail threshold of 5%"]
status:
  description: The worst status of all examined filesystems.
  returned: always
  type: str
  sample: ok
reasons:
  description: Every filesystem's reasons, each prefixed with its path.
  returned: always
  type: list
  elements: str
  sample: []
thresholds:
  description: The thresholds applied, in percent free.
  returned: always
  type: dict
  sample: {inode_warn_percent: 10.0, inode_fail_percent: 5.0, bytes_warn_percent: 10.0, bytes_fail_percent: 5.0}
breakdown:
  description:
    - Where the data-root's inodes and bytes went; null unless O(breakdown=true).
    - C(inodes) and C(bytes) are the totals (the data-root directory itself included), as
      C(du -x --inodes -s) and C(du -x -s -B1) print them. C(directories) maps each top-level
      entry to its C(inodes) and C(bytes). C(top_layers) lists up to O(top_layers) layers with
      C(id), C(parent) (such as C(overlay2)), C(inodes) and C(bytes), most inodes first.
      C(skipped) counts entries that vanished or could not be read during the walk.
  returned: always
  type: dict
  sample:
    path: /var/lib/docker
    inodes: 120455
    bytes: 2147483648
    directories:
      overlay2: {inodes: 118002, bytes: 2080374784}
      image: {inodes: 1402, bytes: 5742592}
    top_layers:
      - {id: 3f1c2b..., parent: overlay2, inodes: 40211, bytes: 802816000}
    skipped: 0
target:
  description:
    - The O(target) check; null without O(target). C(path), C(checked_path) (its nearest
      existing ancestor), C(filesystem) (an entry as in RV(filesystems)), C(same_filesystem)
      (the target is on the data-root's filesystem), C(used) (C(bytes) and C(inodes) of what
      would move), C(need) (used plus margin), C(margin) (C(percent), C(bytes), C(inodes)),
      C(fits) and C(reasons).
  returned: always
  type: dict
  sample:
    path: /srv/docker
    checked_path: /srv
    same_filesystem: false
    used: {bytes: 2147483648, inodes: 120455}
    need: {bytes: 3221225472, inodes: 132500}
    margin: {percent: 10.0, bytes: 1073741824, inodes: 12045}
    fits: true
    reasons: []
ansible_facts:
  description: Facts to add to the host.
  returned: always
  type: dict
  contains:
    docker_storage_capacity:
      description: The whole report above under one key.
      type: dict
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _capacity,
    _capacity_report,
    _module_options,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError


def argument_spec():
    own = dict(
        data_root=dict(type="path"),
        paths=dict(type="list", elements="path", default=[]),
        containerd_root=dict(type="path"),
        containerd_config=dict(type="path", default=_capacity.DEFAULT_CONTAINERD_CONFIG),
        breakdown=dict(type="bool", default=False),
        top_layers=dict(type="int", default=10),
        target=dict(type="path"),
        fail_on_threshold=dict(type="bool", default=False),
    )
    for name, default in _capacity.DEFAULT_THRESHOLDS.items():
        own[name] = dict(type="float", default=default)
    return _module_options.argument_spec(
        own, _module_options.DOCKER_HOST, _module_options.CONFIG_PATH, _module_options.MARGIN
    )


def run(module):
    try:
        result, warnings = _capacity_report.collect(module.params)
    except StorageError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    for warning in warnings:
        module.warn(warning)
    if module.params["fail_on_threshold"] and result["status"] == "fail":
        module.fail_json(msg=_capacity_report.threshold_failure(result), **result)
    module.exit_json(changed=False, ansible_facts={"docker_storage_capacity": result}, **result)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run(module)


if __name__ == "__main__":
    main()
