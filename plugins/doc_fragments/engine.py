# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The Engine API socket, taken by every module that asks the engine, and the action group
    # those modules form (meta/runtime.yml), for module_defaults.
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Engine API socket, C(unix://) and an absolute path.
      - Every module that asks the engine takes it; set it once for all of them with
        C(module_defaults) and the group C(group/dockerhost.storage.engine).
    type: str
    default: unix:///var/run/docker.sock
attributes:
  action_group:
    description:
      - Part of the action group C(dockerhost.storage.engine), so that C(module_defaults) can set
        O(docker_host) once for every module of the collection that asks the engine.
    support: full
    membership:
      - dockerhost.storage.engine
"""

    # The daemon configuration file, for the modules that read or write it.
    CONFIG_PATH = r"""
options:
  config_path:
    description:
      - The daemon configuration file the engine reads (dockerd's C(--config-file)), for its
        C(data-root), C(storage-driver), C(storage-opts) and C(features.containerd-snapshotter).
    type: path
    default: /etc/docker/daemon.json
"""

    # The room to keep where a data-root moves to, for the modules that check that it fits.
    MARGIN = r"""
options:
  margin_percent:
    description:
      - Room to keep on the filesystem the data-root moves to, beyond what the data-root uses
        (containerd's root added when the images live there), in percent of those bytes and
        inodes, and at least 1 GiB and 10000 inodes.
    type: float
    default: 10
"""
