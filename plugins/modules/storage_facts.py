#!/usr/bin/python
# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: storage_facts
short_description: Everything read-only about a Docker host's storage, in one round trip
version_added: 0.1.0
description:
  - Gathers in one task what the read-only modules of this collection find, and returns it as
    the C(docker_storage) fact; driver support as M(dockerhost.storage.driver_support_info)
    judges it, the capacity of the data-root's and containerd root's filesystems as
    M(dockerhost.storage.capacity_info) reports it, the storage keys of daemon.json, storage
    settings given as dockerd flags and their conflicts with daemon.json (as
    M(dockerhost.storage.daemon_config) finds them), a summary of the containers' merged mounts
    (as M(dockerhost.storage.mounts_info) checks them, only when the engine answers), the
    engine version and driver in use, and the owner and mode of C(/etc/docker), daemon.json
    and the data-root.
  - Judges the fact against an audit policy (see O(policy)) and returns every check's result
    and the findings; the C(dockerhost.storage.audit) role builds its reports from them.
  - Works on hosts without Docker; C(docker.state) is then C(absent) and the checks that need
    an engine or a data-root are skipped.
  - Never changes the host. The overlay probe (O(probe)) mounts overlay in a temporary
    directory next to the data-root and removes it before returning.
author:
  - dockerhost.storage maintainers (!UNKNOWN)
options:
  data_root:
    description:
      - The data-root to examine. Defaults to the data-root the running engine reports, else
        C(data-root) in O(config_path), else C(/var/lib/docker).
    type: path
  etc_docker:
    description:
      - The directory whose owner and mode CIS Docker Benchmark 3.5 and 3.6 judge. Defaults to
        the directory of O(config_path).
    type: path
  host_root:
    description:
      - The directory under which the docker.service unit, its drop-ins and the environment
        files are searched for dockerd flags. Set it to examine a chroot or a mounted image root.
      - With the default C(/), where systemd runs, systemd is asked how it loaded the unit
        (C(systemctl show docker.service)).
    type: path
    default: /
  containerd_root:
    description:
      - containerd's root directory. Defaults to C(root) in O(containerd_config), else
        C(/var/lib/containerd); examined only when it is a directory.
    type: path
  containerd_config:
    description:
      - containerd's configuration file, read for C(root).
    type: path
    default: /etc/containerd/config.toml
  probe:
    description:
      - Mount overlay for real in a temporary directory to judge overlay support, as
        M(dockerhost.storage.driver_support_info) does.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for each Engine API call of the mounts summary and of O(disk_users).
    type: int
    default: 30
  disk_users:
    description:
      - How many of the biggest containers (writable layer plus log) and images (unique size)
        to report in C(disk_users), when the engine answers.
      - The sizes come from the engine's disk usage (C(GET /system/df), as
        C(docker system df -v)), which measures every container's writable layer; on a host
        with large writable layers that takes a while. C(0) does not ask.
    type: int
    default: 5
  policy:
    description:
      - The audit policy; keys left out take their defaults.
      - C(expected_drivers) (list, default empty, any driver); C(forbidden_drivers) (list,
        default C(aufs), C(devicemapper), C(overlay)).
      - C(min_free_inodes_percent) and C(min_free_bytes_percent) (fail below, default 5),
        C(warn_free_inodes_percent) and C(warn_free_bytes_percent) (warn below, default 10),
        C(min_free_inodes) and C(min_free_bytes) (absolute floors, default 0). Bytes are judged
        on the space available to unprivileged users, as df shows it.
      - C(warn_layer_depth) (default 100), the number of layers from which an image is a
        warning of the C(layer_depth) check; one with 125, where dockerd stops, fails it.
      - C(skip) (list of check ids not to run); C(severity) (dict of check id to C(fail) or
        C(warn)).
    type: dict
    default: {}
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dockerhost.storage.engine
  - dockerhost.storage.engine.config_path
  - ansible.builtin.action_common_attributes.facts
  - dockerhost.storage.attributes
  - dockerhost.storage.attributes.facts
notes:
  - Needs root to read the data-root, mount overlay and reach the Engine API socket.
  - The check ids and their CIS Docker Benchmark items are listed in C(docs/audit.md).
seealso:
  - module: dockerhost.storage.driver_support_info
  - module: dockerhost.storage.capacity_info
  - module: dockerhost.storage.mounts_info
  - module: dockerhost.storage.daemon_config
"""

EXAMPLES = r"""
- name: Gather the storage facts of a Docker host
  dockerhost.storage.storage_facts:

- name: Show the data-root's filesystem and the findings
  ansible.builtin.debug:
    msg:
      - "{{ ansible_facts.docker_storage.capacity.filesystems }}"
      - "{{ ansible_facts.docker_storage.findings }}"

- name: Audit with overlay2 expected and stricter free-space floors
  dockerhost.storage.storage_facts:
    policy:
      expected_drivers: [overlay2]
      min_free_inodes_percent: 10
      warn_free_inodes_percent: 20
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to the host's facts.
  returned: always
  type: dict
  contains:
    docker_storage:
      description: Everything below under one key.
      type: dict
docker:
  description: Whether Docker is here.
  returned: always
  type: dict
  contains:
    state:
      description: C(running) (the Engine API answered), C(stopped) (it did not, but the
        data-root exists) or C(absent) (neither).
      type: str
    reason:
      description: Why the engine is not C(running), else null.
      type: str
engine:
  description: The engine in force.
  returned: always
  type: dict
  contains:
    version:
      description: The engine version, from the API or C(dockerd --version), else null.
      type: str
    version_source:
      description: C(api), C(binary) or C(none).
      type: str
    api_version:
      description: The Engine API version, else null.
      type: str
    running_driver:
      description: The storage driver in use, else null.
      type: str
    driver_status:
      description: The engine's DriverStatus as a dict.
      type: dict
    image_store:
      description: C(graphdriver), C(containerd), or null when the engine did not answer.
      type: str
    problem:
      description: Why the Engine API did not answer, else null.
      type: str
data_root:
  description: The data-root examined. Under userns-remap the data-root itself (what
    C(data-root) names), not the remapped root below it (see RV(userns_remap)).
  returned: always
  type: str
data_root_source:
  description: C(option), C(engine), C(daemon.json) or C(default).
  returned: always
  type: str
support:
  description: The result of M(dockerhost.storage.driver_support_info) for the data-root
    (C(path), C(path_source), C(checked_path), C(backing_filesystem), C(kernel), C(engine),
    C(overlay_probe), C(prior_drivers), C(drivers), C(would_pick), C(recommended)).
  returned: always
  type: dict
capacity:
  description: The filesystems of the data-root and containerd's root as
    M(dockerhost.storage.capacity_info) reports them.
  returned: always
  type: dict
  contains:
    filesystems:
      description: One entry per examined directory (role C(data_root) or C(containerd_root)),
        in the shape of capacity_info's C(filesystems).
      type: list
      elements: dict
    status:
      description: C(ok), C(warn) or C(fail) for the policy's free-space thresholds; null when
        nothing was examined.
      type: str
    reasons:
      description: Every entry's reasons, prefixed with path, type and mount point.
      type: list
      elements: str
    thresholds:
      description: The percentages applied.
      type: dict
    containerd_root:
      description: containerd's root examined, or null.
      type: str
    containerd_root_source:
      description: C(option), the config file's path or C(default); null when not examined.
      type: str
    problem:
      description: Why the data-root was not examined (it does not exist, or could not be
        read), else null.
      type: str
daemon_json:
  description: The daemon configuration file's storage keys.
  returned: always
  type: dict
  contains:
    path:
      description: The file.
      type: str
    exists:
      description: Whether it exists.
      type: bool
    problem:
      description: Why it could not be read, else null.
      type: str
    mode_problems:
      description: CIS 3.17/3.18 sentences about its owner and mode.
      type: list
      elements: str
    storage_driver:
      description: C(storage-driver), or null.
      type: str
    storage_opts:
      description: C(storage-opts).
      type: list
      elements: str
    data_root:
      description: C(data-root) (or the legacy C(graph)), or null.
      type: str
    containerd_snapshotter:
      description: C(features.containerd-snapshotter), or null.
      type: bool
    userns_remap:
      description: C(userns-remap), or null.
      type: str
userns_remap:
  description:
    - User namespace remapping (C(userns-remap), CIS 2.9). With it dockerd keeps layers, image
      metadata, containers and volumes in the remapped root C(<data-root>/<uid>.<gid>), where
      C(uid) and C(gid) are the lowest starts of the remapped user's ranges in C(/etc/subuid)
      and C(/etc/subgid); the merged mounts are checked there.
  returned: always
  type: dict
  contains:
    enabled:
      description: In force on the running engine (its C(/info) lists C(name=userns)), else
        as configured.
      type: bool
    engine:
      description: What the running engine says, or null when it did not answer.
      type: bool
    setting:
      description: The C(userns-remap) value (C(default) is the user C(dockremap)), or null.
      type: str
    configured_in:
      description: Where it is set (daemon.json, or the flag and its unit file), or null.
      type: str
    user:
      description: The remapped user.
      type: str
    group:
      description: The remapped group.
      type: str
    uid:
      description: The host uid of the containers' root.
      type: int
    gid:
      description: The host gid of the containers' root.
      type: int
    remapped_root:
      description: C(<data-root>/<uid>.<gid>), or null when off or not known.
      type: str
    remapped_root_source:
      description: C(engine) (its DockerRootDir) or C(subuid) (the files), or null.
      type: str
    blocked_by:
      description: A directory between the data-root and C(/) that the remapped uid and gid
        cannot traverse (dockerd then refuses to start), or null.
      type: str
    problem:
      description: Why the remapped root is not known, or null.
      type: str
flags:
  description: Storage settings given to dockerd as flags.
  returned: always
  type: dict
  contains:
    findings:
      description: Each C(key), C(flag), C(value), C(file), C(line), C(where), C(variable).
      type: list
      elements: dict
    inactive:
      description: Settings in environment files the unit does not use.
      type: list
      elements: dict
    unit:
      description: The docker.service unit found, or null.
      type: str
    config_file:
      description:
        - The C(--config-file) flag (C(key) C(config-file), C(value) the file dockerd reads,
          C(flag), C(file), C(line), C(where), C(variable)), or null when dockerd reads
          C(/etc/docker/daemon.json).
      type: dict
    source:
      description:
        - C(systemd) when systemd's view of the unit (C(systemctl show)) was read, C(files)
          when the unit files were.
      type: str
    conflicts:
      description:
        - One sentence per key set both as a flag and in daemon.json, and one when
          C(--config-file) names another file than O(config_path).
      type: list
      elements: str
mounts:
  description: The merged mounts summary of M(dockerhost.storage.mounts_info).
  returned: always
  type: dict
  contains:
    checked:
      description: Whether the containers were checked (only when the engine answers).
      type: bool
    problem:
      description: Why not, else null.
      type: str
    ok:
      description: No problem found. Only when checked.
      type: bool
    summary:
      description: mounts_info's C(summary). Only when checked.
      type: dict
    problems:
      description: The first 20 problems, each C(container), C(check), C(path), C(expected),
        C(found). Only when checked.
      type: list
      elements: dict
    host_mounts:
      description: The first 20 bind mounts that expose the host, as mounts_info's
        C(containers[].host_mounts). Only when checked.
      type: list
      elements: dict
    deepest_images:
      description: The ten images with the most layers, deepest first, each C(image) (its
        first tag, else its short id), C(id), C(layers). Only when checked.
      type: list
      elements: dict
reclaim:
  description:
    - What M(dockerhost.storage.reclaim) with its default steps and ages would remove to bring
      the filesystems back to the policy's warning thresholds (C(warn_free_bytes_percent),
      C(warn_free_inodes_percent)), as its check mode plans it. Asked only when the engine
      answers and a filesystem is below a threshold.
  returned: always
  type: dict
  contains:
    checked:
      description: Whether it was planned.
      type: bool
    problem:
      description: Why not (the engine did not answer, nothing is below a threshold), else
        null.
      type: str
    targets:
      description: C(free_bytes_percent), C(free_inodes_percent). Only when checked.
      type: dict
    reached:
      description: Whether the targets would be reached. Only when checked.
      type: bool
    removed_objects:
      description: How many objects would go. Only when checked.
      type: int
    freed:
      description: Per filesystem role, the C(bytes) and C(inodes) expected to be freed. Only
        when checked.
      type: dict
    steps:
      description: Per step that would run, C(step), C(objects), C(bytes), C(inodes). Only
        when checked.
      type: list
      elements: dict
    next_step:
      description: When the targets would not be reached, the step that would come next.
      type: str
disk_users:
  description: Who fills the disk, from the engine's own disk usage and the containers' log
    files.
  returned: always
  type: dict
  contains:
    checked:
      description: Whether the engine was asked (it answers, and O(disk_users) is not 0).
      type: bool
    problem:
      description: Why not, else null.
      type: str
    containers:
      description: The O(disk_users) containers with the most bytes (writable layer plus log),
        biggest first, each C(name), C(id), C(image), C(state), C(writable_bytes) (the
        engine's C(SizeRw)), C(log_bytes) (the json-file log and its rotated files, or the
        C(local) driver's files; null when unreadable), C(bytes) (the two together). Only
        when checked.
      type: list
      elements: dict
    images:
      description: The O(disk_users) images with the most unique bytes (what no other image
        shares, what removing the image gives back), each C(image) (its first tag, else its
        short id), C(id), C(size_bytes), C(shared_bytes), C(unique_bytes) (null when the
        engine did not compute the shared size), C(containers) (how many use it). Only when
        checked.
      type: list
      elements: dict
    totals:
      description: Over all containers and images, C(containers), C(writable_bytes),
        C(log_bytes), C(images), C(images_bytes) (the engine's C(LayersSize)). Only when
        checked.
      type: dict
audit_rules:
  description: The Linux audit rules and what they watch (CIS Docker Benchmark 1.1.3-1.1.18).
    C(source) (C(auditctl), C(files) or null when there are none), C(files) (the rule files
    read), C(rules) (each C([path, recursive])), C(targets) (by check name, each C(path),
    C(exists), C(covered_by), the rule path that covers it or null).
  returned: always
  type: dict
permissions:
  description: Owner and mode of C(etc_docker), C(daemon_json), C(data_root), and of the
    files and sockets CIS Docker Benchmark section 3 judges, found where the host keeps them
    (C(docker_service), C(docker_socket_unit), C(docker_sock), C(default_docker),
    C(sysconfig_docker), C(containerd_sock)); each C(path) (null when the host has no such
    file), C(exists), C(uid), C(gid), C(owner), C(group), C(mode) (octal string).
  returned: always
  type: dict
checks:
  description: Every check's result, each C(check), C(cis) (CIS Docker Benchmark item or
    null), C(severity), C(status) (C(pass), C(fail), C(warn) or C(skipped)), C(message) and
    C(evidence).
  returned: always
  type: list
  elements: dict
findings:
  description: The checks whose status is C(fail) or C(warn).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _capacity,
    _disk_users,
    _module_options,
    _storage_facts,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError


def argument_spec():
    return _module_options.argument_spec(
        dict(
            data_root=dict(type="path"),
            etc_docker=dict(type="path"),
            host_root=dict(type="path", default="/"),
            containerd_root=dict(type="path"),
            containerd_config=dict(type="path", default=_capacity.DEFAULT_CONTAINERD_CONFIG),
            probe=dict(type="bool", default=True),
            timeout=dict(type="int", default=30),
            disk_users=dict(type="int", default=_disk_users.DEFAULT_TOP),
            policy=dict(type="dict", default={}),
        ),
        _module_options.DOCKER_HOST,
        _module_options.CONFIG_PATH,
    )


def run(module):
    try:
        facts = _storage_facts.audit(module.params)
    except StorageError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    module.exit_json(changed=False, ansible_facts={"docker_storage": facts}, **facts)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run(module)


if __name__ == "__main__":
    main()
