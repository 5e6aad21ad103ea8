#!/usr/bin/python
# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: daemon_config
short_description: Set the Docker storage driver, its options and data-root in daemon.json, safely
version_added: 0.1.0
description:
  - Sets or removes C(storage-driver), C(storage-opts), C(data-root) and
    C(features.containerd-snapshotter) in dockerd's configuration file. Every other key, and the
    order of all keys, stay as they are.
  - Checks the result before writing it, and refuses with a message that names the key and the
    reason when dockerd would not start on it, or would start on something else than asked for.
    The driver must be known to the engine and able to run on the filesystem of the data-root
    that will be in force (the checks of M(dockerhost.storage.driver_support_info)); every
    storage option must be one that driver accepts on that engine and filesystem; the data-root
    must be an absolute path, not under C(/proc), C(/sys), C(/dev) or C(/run), and not reached
    through a symbolic link; where the installed dockerd offers C(--validate) (Docker Engine 23.0
    and later), the candidate file must pass C(dockerd --validate).
  - Finds the same settings given as dockerd flags (C(-s), C(--storage-driver), C(--storage-opt),
    C(-g), C(--graph), C(--data-root), also grouped as in C(-Ds vfs)) in the ExecStart line in
    force of the docker systemd unit and its drop-ins, with the variables of the unit's
    C(Environment=) and C(EnvironmentFile=) settings expanded as systemd expands them. Where
    systemd runs, how it loaded the unit (C(systemctl show docker.service)) is the truth;
    elsewhere the unit files are read. Without a unit, C(/etc/default/docker) and
    C(/etc/sysconfig/docker*) count, as a SysV init script reads them. dockerd refuses to start
    when a directive is both a flag and a key of the file, so the module fails then, naming the
    file and line.
  - Refuses to edit O(config_path) when dockerd reads another file (its C(--config-file) flag),
    with a message that names both files; the file is left as it is.
  - When data-root changes on Docker Engine 29 or later, which gives an empty data-root the
    containerd image store, the module pins the store in use (C(storage-driver), or
    C(features.containerd-snapshotter) when the engine already uses the containerd store) unless
    O(storage_driver) or O(containerd_snapshotter) say otherwise, so that images do not
    silently move to another store.
  - Writes atomically (a temporary file in the same directory, flushed, then renamed over the
    file). When O(config_path) is a symbolic link, the file it points to is replaced and the link
    stays. A new file is created root:root with mode 0644, missing directories with 0755; an
    existing file keeps its owner and mode, with a warning when those are looser than CIS Docker
    Benchmark 3.17 and 3.18 allow.
  - Never restarts dockerd; it reports RV(restart_required) for a handler to act on.
author:
  - dockerhost.storage maintainers (!UNKNOWN)
options:
  storage_driver:
    description:
      - The storage driver to set, such as C(overlay2).
      - With O(containerd_snapshotter=true), a containerd snapshotter name (C(overlayfs),
        C(native)) is also accepted.
    type: str
  storage_opts:
    description:
      - The storage options to set, replacing the ones in the file, such as
        C([overlay2.size=20G]).
      - An empty list means no options and removes the key.
    type: list
    elements: str
  data_root:
    description:
      - The data-root to set.
    type: path
  containerd_snapshotter:
    description:
      - The value of C(features.containerd-snapshotter), which chooses the containerd image
        store (true) or the graphdriver store (false). Other keys of C(features) are kept.
    type: bool
  remove:
    description:
      - Keys to remove from the file. A key cannot be both set and removed.
      - Removing C(containerd-snapshotter) removes C(features.containerd-snapshotter), and the
        C(features) object too when nothing else is left in it.
    type: list
    elements: str
    choices: [storage-driver, storage-opts, data-root, containerd-snapshotter]
    default: []
  backup:
    description:
      - Keep a copy of the previous file next to it, named
        C(<file>.<process id>.<YYYY-MM-DD@HH:MM:SS>~) (the file a link points to, for a link).
      - The copy has mode 0600 and the owner and group of the file from the moment it is
        created, since the file may hold credentials (such as a proxy's); only the owner may
        read it, even when the file itself is readable by others.
      - When the copy cannot be made (the directory is not writable, the filesystem is full,
        the name is taken), the task fails naming the file and the copy, and the file is left
        as it was.
    type: bool
    default: false
  support_check:
    description:
      - Judge the driver and its options against the kernel and the filesystem of the data-root
        that will be in force, as M(dockerhost.storage.driver_support_info) does.
      - Set it to false for a host whose filesystems are prepared later; the rules that depend
        only on the engine version are still applied.
    type: bool
    default: true
  conflicts:
    description:
      - What to do when a key of the resulting file is also given as a dockerd flag.
      - V(fail) refuses to write; V(warn) writes and warns (dockerd will not start until one of
        the two is removed).
    type: str
    choices: [fail, warn]
    default: fail
  engine_version:
    description:
      - The Docker Engine version to check the settings for, such as C(24.0), for a host where
        the engine is not installed yet or is about to be upgraded.
      - Defaults to the version the Engine API reports, else the output of C(dockerd --version),
        else a current engine (29.0).
    type: str
  host_root:
    description:
      - The directory that stands for C(/) when looking for dockerd flags in systemd units,
        the environment files they load, C(/etc/default/docker) and C(/etc/sysconfig/docker*).
        For a host prepared or repaired from a chroot or a mounted image root; it does not
        change O(config_path) or the data-root. Only with the default C(/) is systemd asked (C(systemctl show)).
    type: path
    default: /
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dockerhost.storage.engine
  - dockerhost.storage.engine.config_path
  - dockerhost.storage.engine_lock
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - Needs root to write the file, read the data-root, mount overlay for the support check and
    reach the Engine API socket.
  - The settings take effect when dockerd starts next; restart it in a handler when
    RV(restart_required) is true.
  - The legacy key C(graph) is not rewritten; rename it to C(data-root) before managing the
    data-root with this module.
seealso:
  - module: dockerhost.storage.driver_support_info
  - name: Docker daemon configuration file
    description: The keys of daemon.json and how flags and the file interact.
    link: https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file
"""

EXAMPLES = r"""
- name: Use overlay2 with a 20 GB size limit per container on an xfs data-root with pquota
  dockerhost.storage.daemon_config:
    storage_driver: overlay2
    storage_opts:
      - overlay2.size=20G
    data_root: /srv/docker
    backup: true
  register: docker_storage
  notify: Restart docker

- name: Drop the storage options and let dockerd pick the driver again
  dockerhost.storage.daemon_config:
    remove:
      - storage-driver
      - storage-opts

- name: Prepare the file for a host whose engine and filesystem come later
  dockerhost.storage.daemon_config:
    storage_driver: overlay2
    engine_version: "27.5"
    support_check: false
"""

RETURN = r"""
path:
  description: The configuration file.
  returned: always
  type: str
  sample: /etc/docker/daemon.json
config:
  description: The whole configuration as it is (or, in check mode, would be) after the task.
  returned: always
  type: dict
  sample: {"log-driver": "journald", "storage-driver": "overlay2", "data-root": "/srv/docker"}
changed_keys:
  description:
    - The keys that changed, C(features.containerd-snapshotter) for the feature; empty when
      nothing changed.
  returned: always
  type: list
  elements: str
  sample: [storage-driver, data-root]
restart_required:
  description: Whether dockerd must be restarted for the change to take effect.
  returned: always
  type: bool
  sample: true
backup_file:
  description:
    - The copy of the previous file, when O(backup=true) and the file was changed; mode 0600,
      with the owner and group of the file.
  returned: changed and backup is true and the file existed
  type: str
  sample: /etc/docker/daemon.json.12345.2026-01-31@10:00:00~
data_root:
  description: The data-root that will be in force with the new file, which the checks used.
  returned: always
  type: str
  sample: /srv/docker
pinned:
  description:
    - The setting added to keep the image store when data-root changes on Docker Engine 29 or
      later, with the reason; null when none was needed.
  returned: always
  type: dict
  sample: {key: storage-driver, value: overlay2, reason: the running engine uses overlay2}
flags:
  description:
    - Storage settings given as dockerd flags, each with C(key) (the daemon.json key),
      C(flag), C(value), C(file), C(line), C(where) (C(file:line)) and C(variable) (the
      environment variable holding it, or null).
    - C(file) and C(line) are null when only systemd knows the setting (the unit changed on
      disk since systemd loaded it); C(where) says so then.
  returned: always
  type: list
  elements: dict
  sample:
    - key: storage-driver
      flag: --storage-driver
      value: overlay2
      file: /etc/systemd/system/docker.service.d/storage.conf
      line: 3
      where: /etc/systemd/system/docker.service.d/storage.conf:3
      variable: null
validated_by:
  description:
    - The command that validated the candidate file; null when nothing changed or the installed
      dockerd has no C(--validate) (before Docker Engine 23.0).
  returned: always
  type: str
  sample: /usr/sbin/dockerd --validate
engine:
  description:
    - The engine the settings were checked for, as M(dockerhost.storage.driver_support_info)
      returns it.
  returned: always
  type: dict
  sample:
    version: 20.10.24+dfsg1
    version_source: api
    running_driver: overlay2
    data_root: /var/lib/docker
diff:
  description: The file's text before and after, in diff mode.
  returned: when diff mode is on
  type: dict
  sample: {before: "{}\n", after: "{\n  \"storage-driver\": \"overlay2\"\n}\n",
           before_header: /etc/docker/daemon.json, after_header: /etc/docker/daemon.json}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _daemon_config,
    _daemon_config_update,
    _module_options,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_lock import (
    hold_engine_lock,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError


def argument_spec():
    return _module_options.argument_spec(
        dict(
            storage_driver=dict(type="str"),
            storage_opts=dict(type="list", elements="str"),
            data_root=dict(type="path"),
            containerd_snapshotter=dict(type="bool"),
            remove=dict(
                type="list", elements="str", choices=list(_daemon_config.MANAGED_KEYS), default=[]
            ),
            backup=dict(type="bool", default=False),
            support_check=dict(type="bool", default=True),
            conflicts=dict(type="str", choices=["fail", "warn"], default="fail"),
            engine_version=dict(type="str"),
            host_root=dict(type="path", default="/"),
        ),
        _module_options.DOCKER_HOST,
        _module_options.CONFIG_PATH,
        _module_options.ENGINE_LOCK,
    )


def run(module):
    params = module.params
    try:
        flags = _daemon_config_update.check_flags(params)
        if not module.check_mode:
            # Read, merge and write as one step: no other run may write daemon.json in between.
            hold_engine_lock(params, "daemon_config: updating %s" % params["config_path"])
        result, warnings = _daemon_config_update.update(
            params, flags, module.check_mode, module._diff, module.tmpdir
        )
    except StorageError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run(module)


if __name__ == "__main__":
    main()
