#!/usr/bin/python
# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: data_root
short_description: Move Docker's data-root to another filesystem without losing anything
version_added: 0.1.0
description:
  - Relocates the data-root the engine uses (such as C(/var/lib/docker)) to O(path), as one
    transaction, with the engine stopped only for a final incremental pass.
  - Preflight, changing nothing and listing every reason when it refuses. The source is the
    data-root in force. The target is absent or empty, on another filesystem, neither inside
    the other. Its filesystem passes the driver checks of M(dockerhost.storage.driver_support_info)
    for the driver in use (d_type, a real overlay mount). It has room for the used bytes and
    inodes plus a margin. It keeps C(trusted.*) and C(security.*) extended attributes and
    device nodes. No C(--data-root) flag is set in the docker unit or its environment files.
  - Then a bulk copy while the engine runs (written to disk before the engine stops), a stop of
    the engine, a final pass that copies what changed (reading only the entries where changes
    were recorded during the bulk copy, where the kernel can record them), a check of the copy
    entry by entry (type, mode, owner, size, mtime, device
    numbers, every extended attribute and ACL, hard-link groups, symlink targets, sparse
    extents, and the content of what changed after the bulk copy), the switch of C(data-root)
    in daemon.json with the storage driver pinned, and a start of the engine, confirmed over
    the Engine API. The engine must run the same driver from the new root with every image,
    container and volume. Containers that ran before run again.
  - Any failure after the engine stopped puts daemon.json back and starts the engine on the
    original data-root before the task fails. The source is never modified; after success it
    is kept as C(<source>.relocated-<UTC time>) unless O(remove_source=true).
  - A journal in C(/var/lib/dockerhost-storage/relocation/) (a directory only root may write;
    one file per target, C(<last component of the target>-<hash of its path>.json)) lets a run
    that was killed at any moment be completed by the next run. A journal that root does not
    own, that others may write, or whose source is not the data-root in force (or, after the
    switch, the one its saved configuration names) is refused.
  - The copy is made by the collection's own copier (see C(docs/relocation.md)), not rsync.
author:
  - dockerhost.storage maintainers (!UNKNOWN)
options:
  path:
    description:
      - The new data-root, an absolute path on the filesystem that should hold Docker's data.
      - Missing directories are created.
    type: path
    required: true
  state:
    description:
      - C(relocated) makes the engine run from O(path) with everything it had.
    type: str
    choices: [relocated]
    default: relocated
  method:
    description:
      - C(config) writes the new C(data-root) into daemon.json (with C(storage-driver) pinned, so
        that the engine keeps its driver and image store on the new root).
      - C(mount) leaves daemon.json alone and bind-mounts O(path) over the old data-root path, with
        a line in O(fstab_path) that mounts it at boot, for setups that hard-code
        C(/var/lib/docker). The old data then stays beneath the mount (it cannot be renamed
        there); O(remove_source=true) removes it.
    type: str
    choices: [config, mount]
    default: config
  fstab_path:
    description:
      - The fstab that gets the bind mount line with O(method=mount).
    type: path
    default: /etc/fstab
  force:
    description:
      - Copy into a O(path) that is not empty. Entries there that are not in the source are
        removed.
    type: bool
    default: false
  allow_same_filesystem:
    description:
      - Allow a target on the same filesystem as the source (it frees no space).
    type: bool
    default: false
  remove_source:
    description:
      - Remove the old data-root after success instead of keeping it under a new name.
    type: bool
    default: false
  verify:
    description:
      - C(changed) hashes the content of the files that changed after the bulk copy; all other
        attributes of every entry are compared either way.
      - C(full) hashes the content of every file (slower; used automatically when a killed run
        is resumed).
    type: str
    choices: [changed, full]
    default: changed
  service_manager:
    description:
      - How the engine is stopped and started. C(auto) uses systemd when it is the init system
        (C(docker.socket) and C(docker.service)), else the init script O(init_script).
    type: str
    choices: [auto, systemd, sysvinit]
    default: auto
  init_script:
    description:
      - The init script used when O(service_manager) is C(sysvinit).
    type: path
    default: /etc/init.d/docker
  timeout:
    description:
      - Seconds to wait for the engine to stop, and to answer again after a start.
    type: int
    default: 120
  containerd_path:
    description:
      - Where the host containerd's root goes, when the engine keeps its images in the
        containerd image store of the host's containerd (C(containerd.service), as Debian's
        C(docker.service) starts dockerd with C(--containerd)) rather than under the data-root.
      - It moves with the data-root, in the same transaction; see the notes. Without this
        option such a move is refused, since the images would stay behind.
      - A directory beside O(path), not inside it nor around it; the same rules as for O(path)
        apply (absent or empty, on another filesystem than the old root, parents only root may
        write).
    type: path
  containerd_config_path:
    description:
      - The containerd configuration whose top-level C(root) is set to O(containerd_path). Only
        that line changes (or is added before the first table); a file that imports others, sets
        C(root) twice or not as a one-line string is refused.
    type: path
    default: /etc/containerd/config.toml
  containerd_shared:
    description:
      - Move containerd's root even when clients other than Docker keep data there (namespaces
        other than C(moby) and C(plugins.moby), such as Kubernetes' C(k8s.io)), or when its
        namespaces cannot be listed (no C(ctr), containerd not running). Their containers must
        be stopped first; the move stops, and rolls back, while any container still runs on
        layers under containerd's old root once containerd has stopped.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dockerhost.storage.engine
  - dockerhost.storage.engine.config_path
  - dockerhost.storage.engine.margin
  - dockerhost.storage.engine_lock
attributes:
  check_mode:
    support: full
    details: Runs the whole preflight and returns the plan; nothing is copied or stopped. The
      preflight's probes (a test overlay mount, an xattr and a device node) are made in a
      temporary directory next to the target and removed again.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Needs root.
  - Engines on the containerd image store (the default of Docker Engine 29 on a fresh
    data-root, or C(features.containerd-snapshotter)) keep their images under containerd's
    root. When dockerd runs its own containerd (no host containerd answered at its start), that
    root is C(<data-root>/containerd/daemon) and moves with the data-root; RV(containerd_root)
    names it. When the host's containerd keeps the images, outside the data-root, its root
    moves too when O(containerd_path) is set (and the move is refused otherwise). Both trees
    are copied while everything runs, the engine and then containerd are stopped, both get a
    final pass and are verified, containerd's configuration and then daemon.json are switched,
    containerd and then the engine are started, and every image (by ID and tag), container and
    volume must be there, with containerd holding its new root open. Any failure puts both
    files back and starts containerd and the engine on the old roots. Check mode shows both
    trees in RV(plan), whose C(containerd) entry holds containerd's root, its size, the new
    text of its configuration (C(config_change)) and the namespaces that share it.
seealso:
  - module: dockerhost.storage.capacity_info
  - module: dockerhost.storage.daemon_config
"""

EXAMPLES = r"""
- name: Move Docker's data to the filesystem mounted on /srv
  dockerhost.storage.data_root:
    path: /srv/docker
  register: moved

- name: Show how long the engine was down
  ansible.builtin.debug:
    msg: "{{ moved.timings.downtime | default('not stopped') }} s"

- name: Only check whether the move would work, and what it would stop
  dockerhost.storage.data_root:
    path: /srv/docker
  check_mode: true
  register: plan
"""

RETURN = r"""
source:
  description: The data-root in force before the move.
  returned: always
  type: str
  sample: /var/lib/docker
path:
  description: The new data-root.
  returned: always
  type: str
  sample: /srv/docker
containerd_root:
  description:
    - The root of the containerd that keeps the engine's images, when the engine uses the
      containerd image store. It moves with the data-root when it lies below it.
  returned: when the engine uses the containerd image store
  type: str
  sample: /var/lib/docker/containerd/daemon
lock_waited:
  description:
    - Seconds this run waited for the host's engine lock (see O(lock_timeout)) before it
      started; more than zero when another run held it.
  returned: when not in check mode
  type: float
  sample: 0.0
driver:
  description: The storage driver the engine uses, pinned in daemon.json with the new data-root.
  returned: always
  type: str
  sample: overlay2
plan:
  description:
    - What the move needs and does; returned in check mode and on success.
    - When containerd's root moves too (O(containerd_path)), C(containerd) holds its C(source),
      C(path), C(config_path), C(stops), C(bytes), C(inodes), C(namespaces) (null when they
      could not be listed) and C(config_change), the text its configuration would get.
  returned: when the data-root changes or would change
  type: dict
  sample:
    bytes: 1073741824
    inodes: 120345
    engine_running: true
    stops: "systemctl stop/start docker.socket docker.service"
    target_filesystem: xfs
    resumed: false
    method: config
steps:
  description: What was done, in order.
  returned: when the data-root changed
  type: list
  elements: str
timings:
  description:
    - Seconds spent in C(bulk_copy), C(verify_while_running), C(sync_while_running) (writing the
      copy to disk while the engine runs), C(stop_engine), C(final_pass), C(verify), C(sync),
      C(start_engine), and C(downtime) (from the stop until the engine answered again); when
      containerd's root moves too, also C(bulk_copy_containerd),
      C(verify_containerd_while_running), C(stop_containerd), C(final_pass_containerd),
      C(verify_containerd) and C(start_containerd).
    - The final pass reads only the entries where changes were recorded while the engine ran
      (fanotify, Linux 5.9 and later); see C(steps) for what it read, or why it walked the whole
      tree.
  returned: when the data-root changed
  type: dict
source_kept_at:
  description: Where the old data-root was kept, or null when it was removed.
  returned: when the data-root changed
  type: str
  sample: /var/lib/docker.relocated-20261124T021500Z
containerd_root_kept_at:
  description:
    - Where containerd's old root was kept (renamed as the data-root is), or null when it was
      removed; only when O(containerd_path) moved it.
  returned: when containerd's root moved
  type: str
  sample: /var/lib/containerd.relocated-20261124T021500Z
restarted_containers:
  description: Containers that ran before the move and were started again after it.
  returned: when the data-root changed
  type: list
  elements: str
problems:
  description: Every reason the preflight refused the move.
  returned: on failure in preflight
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _containerd,
    _data_root_move,
    _module_options,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_lock import (
    hold_engine_lock,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError


def argument_spec():
    return _module_options.argument_spec(
        dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["relocated"], default="relocated"),
            method=dict(type="str", choices=["config", "mount"], default="config"),
            fstab_path=dict(type="path", default="/etc/fstab"),
            force=dict(type="bool", default=False),
            allow_same_filesystem=dict(type="bool", default=False),
            remove_source=dict(type="bool", default=False),
            verify=dict(type="str", choices=["changed", "full"], default="changed"),
            service_manager=dict(
                type="str", choices=["auto", "systemd", "sysvinit"], default="auto"
            ),
            init_script=dict(type="path", default="/etc/init.d/docker"),
            timeout=dict(type="int", default=120),
            containerd_path=dict(type="path"),
            containerd_config_path=dict(type="path", default=_containerd.DEFAULT_CONTAINERD_CONFIG),
            containerd_shared=dict(type="bool", default=False),
        ),
        _module_options.DOCKER_HOST,
        _module_options.CONFIG_PATH,
        _module_options.MARGIN,
        _module_options.ENGINE_LOCK,
    )


def run(module):
    params = module.params
    try:
        target = _data_root_move.check_options(params)
        lock = None
        if not module.check_mode:
            # Held until the module exits: the journal, the engine and daemon.json are this
            # run's.
            lock = hold_engine_lock(params, "data_root: moving the data-root to %s" % target)
        result = _data_root_move.relocate(
            params,
            target,
            module.check_mode,
            module.warn,
            lock_waited=lock.waited if lock is not None else None,
        )
    except StorageError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    module.exit_json(**result)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run(module)


if __name__ == "__main__":
    main()
