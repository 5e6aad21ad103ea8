#!/usr/bin/python
# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: driver_support_info
short_description: Tell which Docker storage drivers can run on a host, and why not
version_added: 0.1.0
description:
  - Judges every Docker storage driver (overlay2, aufs, btrfs, zfs, fuse-overlayfs, vfs and the
    retired overlay and devicemapper) on the filesystem where Docker keeps its data, for the engine
    version in use or a version you plan to upgrade to.
  - Evidence comes from the kernel (release, C(/proc/filesystems), the kernel config, built-in,
    loadable and loaded modules, C(modprobe.d) blacklists and disabling C(install) lines, overlay
    module parameters) and from the backing filesystem itself (statfs type, d_type as getdents
    returns it, and a real overlay mount with two lower directories, as dockerd does).
  - Also reports the driver dockerd would pick on that data-root with no driver set (priority
    by engine version, state of prior drivers, the containerd image store of Docker 29) and a
    recommended driver to pin.
  - Never changes the host. The probe creates a temporary directory next to the data-root,
    mounts overlay inside it, and removes both before returning.
author:
  - dockerhost.storage maintainers (!UNKNOWN)
options:
  path:
    description:
      - The data-root to judge.
      - Defaults to the data-root the running engine reports, else C(data-root) in the daemon
        configuration file, else C(/var/lib/docker).
      - A path that does not exist yet is judged on the filesystem of its nearest existing
        ancestor.
    type: path
  engine_version:
    description:
      - The Docker Engine version to judge for, such as C(20.10) or C(27.5.1); use it to plan an
        upgrade.
      - Defaults to the version the Engine API reports, else the output of C(dockerd --version).
        Without either, verdicts are for a current engine (29.0) and say so.
    type: str
  probe:
    description:
      - Mount overlay for real (two lower directories, an upper and a work directory) in a
        temporary directory on the backing filesystem and read d_type with getdents.
      - Without the probe, overlay verdicts rest on the filesystem type and carry a warning.
    type: bool
    default: true
  required:
    description:
      - A driver that must be able to run. When it cannot, the task fails and lists the reasons;
        use it as a preflight before configuring that driver.
    type: str
    choices: [overlay2, aufs, btrfs, zfs, fuse-overlayfs, vfs, overlay, devicemapper]
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dockerhost.storage.engine
  - dockerhost.storage.engine.config_path
  - ansible.builtin.action_common_attributes.facts
  - dockerhost.storage.attributes
  - dockerhost.storage.attributes.facts
notes:
  - Needs root to read the data-root, mount overlay and reach the Engine API socket.
  - Verdicts for engines that are not installed follow the rules of dockerd's graphdriver code
    for that release; see C(docs/drivers.md) in the collection.
seealso:
  - name: Docker storage drivers
    description: Docker's guide to choosing a storage driver.
    link: https://docs.docker.com/engine/storage/drivers/select-storage-driver/
"""

EXAMPLES = r"""
- name: Which storage drivers can this host run?
  dockerhost.storage.driver_support_info:
  register: support

- name: Show why overlay2 cannot run
  ansible.builtin.debug:
    var: support.drivers.overlay2.reasons
  when: not support.drivers.overlay2.supported

- name: Preflight a new data-root on a separate filesystem for overlay2
  dockerhost.storage.driver_support_info:
    path: /srv/docker
    required: overlay2

- name: Plan an upgrade to Docker Engine 24 (aufs and overlay are gone there)
  dockerhost.storage.driver_support_info:
    engine_version: "24.0"
    probe: false
"""

RETURN = r"""
path:
  description: The data-root judged.
  returned: always
  type: str
  sample: /var/lib/docker
path_source:
  description: Where the data-root came from, C(option), C(engine), C(daemon.json) or C(default).
  returned: always
  type: str
  sample: engine
checked_path:
  description: The nearest existing ancestor of O(path), whose filesystem was examined.
  returned: always
  type: str
  sample: /var/lib/docker
backing_filesystem:
  description: The filesystem under the data-root.
  returned: always
  type: dict
  contains:
    type:
      description: Filesystem type, from the statfs magic (mountinfo tells ext2, ext3 and ext4 apart).
      type: str
      sample: ext4
    magic:
      description: The statfs f_type in hex.
      type: str
      sample: "0x0000ef53"
    mount_point:
      description: Where that filesystem is mounted.
      type: str
      sample: /
    source:
      description: The mounted device or source.
      type: str
      sample: /dev/vda1
    mount_options:
      description: Per-mount options.
      type: str
      sample: rw,relatime
    super_options:
      description: Per-filesystem options.
      type: str
      sample: rw,prjquota
    d_type:
      description: Whether getdents returns file types (null when not probed).
      type: bool
    project_quota:
      description: Whether the filesystem is xfs mounted with project quota, which C(overlay2.size) needs.
      type: bool
kernel:
  description: What the kernel offers.
  returned: always
  type: dict
  sample:
    release: 6.1.0-18-amd64
    config_source: /boot/config-6.1.0-18-amd64
    overlay: {available: true, how: builtin, blocked_by: [], blacklisted_by: []}
    aufs: {available: false, how: absent, blocked_by: [], blacklisted_by: []}
    overlay_parameters: {redirect_dir: "N", metacopy: "N", index: "N"}
engine:
  description: The engine the verdicts are for.
  returned: always
  type: dict
  sample:
    version: 20.10.24+dfsg1
    version_source: api
    api_version: "1.41"
    running_driver: overlay2
    data_root: /var/lib/docker
    configured_driver: null
    problem: null
overlay_probe:
  description: The real overlay mount test.
  returned: always
  type: dict
  sample: {attempted: true, ok: true, error: null}
drivers:
  description:
    - One entry per driver with C(supported) (true, false, or null when unknown), C(reasons),
      C(warnings), C(deprecated) and C(removed).
  returned: always
  type: dict
  sample:
    overlay2: {supported: true, reasons: [], warnings: [], deprecated: false, removed: false}
    aufs:
      supported: false
      reasons: ["the kernel has no aufs filesystem (not in /proc/filesystems, not built in, no loadable module)"]
      warnings: []
      deprecated: false
      removed: false
would_pick:
  description:
    - What dockerd would use on this data-root with no storage driver set; C(driver) is null when
      it would refuse to start.
  returned: always
  type: dict
  sample: {driver: overlay2, image_store: graphdriver, reason: "first driver in the priority list that works here"}
recommended:
  description: The driver to pin in daemon.json, or null when none works.
  returned: always
  type: str
  sample: overlay2
ansible_facts:
  description: Facts to add to the host.
  returned: always
  type: dict
  contains:
    docker_storage_support:
      description: The whole report above under one key.
      type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _driver_support_report,
    _drivers,
    _module_options,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError


def argument_spec():
    return _module_options.argument_spec(
        dict(
            path=dict(type="path"),
            engine_version=dict(type="str"),
            probe=dict(type="bool", default=True),
            required=dict(type="str", choices=list(_drivers.DRIVERS)),
        ),
        _module_options.DOCKER_HOST,
        _module_options.CONFIG_PATH,
    )


def run(module):
    try:
        result, warnings = _driver_support_report.collect(module.params)
    except StorageError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(changed=False, ansible_facts={"docker_storage_support": result}, **result)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run(module)


if __name__ == "__main__":
    main()
