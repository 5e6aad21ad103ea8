#!/usr/bin/python
# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mounts_info
short_description: Prove that containers run on the overlay mounts the engine believes in
version_added: 0.1.0
description:
  - Lists the containers of a Docker engine over the Engine API and checks each one's storage
    against the kernel's mount table (C(/proc/self/mountinfo), parsed once).
  - For a running overlay2 container, its merged directory must be an overlay mount whose upper,
    work and lower directories are the engine's C(GraphDriver) ones, each lower C(l/<short>) link
    must resolve to an existing C(diff) directory, and there must be at most 128 lower layers.
    For a stopped one, its layer directories must exist.
  - Relative lower directories (which dockerd uses when absolute ones do not fit in one page),
    C(lowerdir+=) entries of kernels 6.8 and later and escaped characters in paths are understood.
  - On aufs hosts, each container's branches in C(/sys/fs/aufs) are checked against the aufs
    driver's layer metadata.
  - Containers on the containerd image store (the default of Docker 29 on a fresh data-root) have
    no layer directories the engine reports; they are listed as C(not_checked) with the reason.
  - With O(check_store=true), checks the overlay2 layer store itself and lists orphaned layer
    directories with their size.
  - Never changes anything unless O(probe=true), which runs and removes a throwaway container.
author:
  - dockerhost.storage maintainers (!UNKNOWN)
options:
  timeout:
    description:
      - Seconds to wait for each Engine API answer before giving up on the engine.
    type: int
    default: 30
  data_root:
    description:
      - The engine's data-root, for the layer store check and the aufs metadata.
      - Defaults to the data-root the engine reports.
      - When the engine runs with userns-remap, its store is the remapped root
        C(<data-root>/<uid>.<gid>) below this directory, and that is what is checked.
    type: path
  containers:
    description:
      - Names or ids (at least four characters of an id) of the containers to check.
      - Defaults to every container, running or not.
    type: list
    elements: str
  check_store:
    description:
      - Check the overlay2 layer store under O(data_root) as well. Every C(l/) link must resolve
        to C(../<id>/diff), every layer's C(link) file must match its C(l/) entry, every C(lower)
        file must name existing links, every layerdb C(cache-id), C(mount-id) and C(init-id) must
        name an existing layer directory.
      - Layer directories nothing refers to (no image layer, no container) are listed as orphaned,
        with the disk space they use.
    type: bool
    default: false
  probe:
    description:
      - Run a throwaway container from O(probe_image) and prove from the host that its merged
        directory is an overlay mount, that a write lands in its upper directory and that deleting
        a file of an image layer leaves a whiteout (a character device 0/0) there. The container
        is removed afterwards.
      - Skipped in check mode.
    type: bool
    default: false
  probe_image:
    description:
      - A local image for the probe, with C(/bin/sh), C(printf), C(rm) and C(sleep) (a busybox or
        Debian image). It is never pulled; the task fails when it is not present.
      - Required when O(probe=true).
    type: str
  mountinfo_path:
    description:
      - The mount table to read. Use C(/proc/<dockerd pid>/mountinfo) when dockerd runs in a mount
        namespace of its own.
    type: path
    default: /proc/self/mountinfo
  fail_on_problems:
    description:
      - Fail the task when any problem is found, with the report in the result.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dockerhost.storage.engine
  - dockerhost.storage.attributes
notes:
  - Needs root to reach the Engine API socket and read the data-root.
  - The probe leaves nothing behind, so the module never reports a change.
  - How dockerd mounts overlay2 and what each kind of damage looks like is described in
    C(docs/mounts.md) in the collection.
seealso:
  - module: dockerhost.storage.driver_support_info
  - name: OverlayFS storage driver
    description: How Docker uses overlay2.
    link: https://docs.docker.com/engine/storage/drivers/overlayfs-driver/
"""

EXAMPLES = r"""
- name: Check the merged mounts of every container
  dockerhost.storage.mounts_info:
  register: mounts

- name: Show what is wrong, container by container
  ansible.builtin.debug:
    var: mounts.problems
  when: not mounts.ok

- name: Check the layer store too and stop the play on any problem
  dockerhost.storage.mounts_info:
    check_store: true
    fail_on_problems: true

- name: Prove overlay2 works with a throwaway container from a local image
  dockerhost.storage.mounts_info:
    containers: [web]
    probe: true
    probe_image: busybox:latest
"""

RETURN = r"""
ok:
  description:
    - True when no problem was found in the containers, the store or the probe.
    - Containers that could not be checked (see C(summary.not_checked)) do not make it false.
  returned: always
  type: bool
  sample: true
data_root:
  description: The data-root examined (under userns-remap the data-root itself; C(store.path)
    names the remapped store checked).
  returned: always
  type: str
  sample: /var/lib/docker
engine:
  description: The engine's version, API version, running storage driver and image store.
  returned: always
  type: dict
  sample: {version: 20.10.24+dfsg1, api_version: "1.41", driver: overlay2, image_store: graphdriver}
containers:
  description: One entry per container checked.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The container id.
      type: str
    name:
      description: The container name.
      type: str
    state:
      description: The engine's state, such as C(running) or C(exited).
      type: str
    running:
      description: Whether it runs (paused counts as running, its mount stays).
      type: bool
    driver:
      description: The storage driver or snapshotter the engine reports for it.
      type: str
    status:
      description: C(ok), C(problems), or C(not_checked) (see C(reason)).
      type: str
    reason:
      description: Why it was not checked, else null.
      type: str
    merged_dir:
      description: The merged directory the engine reports.
      type: str
    mounted:
      description: Whether the merged directory is an overlay (or aufs) mount; null when stopped.
      type: bool
    layers:
      description: The number of lower layers mounted (aufs, read-only branches).
      type: int
    relative_paths:
      description: Whether the kernel shows the mount with paths relative to the overlay2 home.
      type: bool
    options:
      description:
        - Other options of the overlay mount, such as C(index), C(userxattr), C(redirect_dir).
      type: dict
    host_mounts:
      description:
        - Its bind mounts that expose the host, each C(check) (C(sensitive_host_mount) for
          C(/), C(/boot), C(/dev), C(/etc), C(/lib), C(/proc), C(/sys) or C(/usr) itself;
          C(socket_mounted) for the engine's socket, or any C(docker.sock) or
          C(containerd.sock); C(shared_mount_propagation) for C(shared) or C(rshared)),
          C(container), C(source), C(destination), C(rw), C(propagation).
        - These are reported, not problems; the audit judges them (CIS Docker Benchmark 5.6,
          5.32, 5.20).
      type: list
      elements: dict
    problems:
      description: This container's problems, shaped as C(problems).
      type: list
      elements: dict
problems:
  description: Every problem found in the containers and the store.
  returned: always
  type: list
  elements: dict
  contains:
    container:
      description: The container's name (its id for store entries of a container), or null.
      type: str
    check:
      description:
        - What failed, such as C(merged_mount), C(upperdir), C(workdir), C(lower_link),
          C(lower_chain), C(layer_count), C(layer_dir), C(store_link), C(store_link_file),
          C(store_lower), C(store_cache_id), C(store_mount_id), C(aufs_branches).
      type: str
    path:
      description: The path concerned.
      type: str
    expected:
      description: What should be there.
      type: str
    found:
      description: What is there.
      type: str
  sample:
    - container: web
      check: merged_mount
      path: /var/lib/docker/overlay2/0f3c.../merged
      expected: an overlay mount
      found: no mount (the directory is a plain directory of its parent filesystem)
summary:
  description: Counts.
  returned: always
  type: dict
  sample:
    containers: 20
    running: 18
    ok: 20
    with_problems: 0
    not_checked: 0
    problems: 0
    store_problems: 0
    orphaned_layers: 0
    probe_problems: 0
store:
  description: The overlay2 layer store check.
  returned: always
  type: dict
  contains:
    checked:
      description: Whether the store was checked.
      type: bool
    reason:
      description: Why not, else null.
      type: str
    path:
      description: The overlay2 home.
      type: str
    layers:
      description: Layer directories found.
      type: int
    links:
      description: Links found in C(l/).
      type: int
    problems:
      description: Problems of the store, shaped as C(problems).
      type: list
      elements: dict
    orphaned_layers:
      description: Layer directories nothing refers to, each with C(id), C(path) and C(size_bytes)
        (disk space it uses).
      type: list
      elements: dict
    orphaned_bytes:
      description: The disk space of all orphaned layer directories.
      type: int
probe:
  description: The probe container's findings.
  returned: always
  type: dict
  sample:
    attempted: true
    ok: true
    skipped_reason: null
    image: busybox:latest
    container: dockerhost-storage-probe-1a2b3c4d
    victim: /bin/busybox
    merged_dir: /var/lib/docker/overlay2/5e1d.../merged
    merged_mounted: true
    write_in_upperdir: true
    whiteout_in_upperdir: true
    removed: true
    problems: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerhost.storage.plugins.module_utils import _module_options
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError
from ansible_collections.dockerhost.storage.plugins.module_utils._mounts_report import (
    collect,
    describe_problems,
)


def argument_spec():
    return _module_options.argument_spec(
        dict(
            timeout=dict(type="int", default=30),
            data_root=dict(type="path"),
            containers=dict(type="list", elements="str"),
            check_store=dict(type="bool", default=False),
            probe=dict(type="bool", default=False),
            probe_image=dict(type="str"),
            mountinfo_path=dict(type="path", default="/proc/self/mountinfo"),
            fail_on_problems=dict(type="bool", default=False),
        ),
        _module_options.DOCKER_HOST,
    )


def run(module):
    params = module.params
    if params["timeout"] <= 0:
        module.fail_json(
            msg="timeout must be a positive number of seconds, got %d" % params["timeout"]
        )
    try:
        result = collect(params, check_mode=module.check_mode)
    except StorageError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    if params["fail_on_problems"] and not result["ok"]:
        module.fail_json(
            msg="mounts_info found %d problem(s): %s"
            % (
                result["summary"]["problems"]
                + result["summary"]["store_problems"]
                + result["summary"]["probe_problems"],
                describe_problems(result),
            ),
            **result,
        )
    module.exit_json(changed=False, **result)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[("probe", True, ["probe_image"])],
        supports_check_mode=True,
    )
    run(module)


if __name__ == "__main__":
    main()
