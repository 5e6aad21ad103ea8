# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which containerd keeps an engine's images when the engine uses the containerd image store,
and where that containerd's root is.

dockerd either talks to the host's containerd (a service of its own, root from
/etc/containerd/config.toml, /var/lib/containerd by default) or, when no such containerd answers
at its start and none is configured, runs its own: ``containerd --config
/var/run/docker/containerd/containerd.toml``, whose root dockerd sets to
``<data-root>/containerd/daemon``. Only in the second case does the image store move with the
data-root.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os
from collections import namedtuple

from ansible_collections.dockerhost.storage.plugins.module_utils._capacity import (
    DEFAULT_CONTAINERD_CONFIG,
    parse_containerd_root,
    read_containerd_root,
)

# Where dockerd writes the configuration of the containerd it runs itself.
MANAGED_CONFIG = "/var/run/docker/containerd/containerd.toml"
# The socket of the host's own containerd, which dockerd uses when it answers at its start.
SYSTEM_SOCKET = "/run/containerd/containerd.sock"
# Below the data-root, the root dockerd gives the containerd it runs itself.
MANAGED_ROOT = os.path.join("containerd", "daemon")

ContainerdStore = namedtuple("ContainerdStore", "root kind evidence")
"""``root``: the containerd root holding the images; ``kind``: ``managed`` (run by dockerd) or
``system`` (the host's containerd); ``evidence``: how that was found, for messages."""


def config_of_command_line(argv):
    """The value of ``--config``/``-c`` in a containerd command line (a list), or None."""
    for index, arg in enumerate(argv):
        if arg in ("--config", "-c") and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--config="):
            return arg[len("--config=") :]
    return None


def running_containerd_configs(proc_root="/proc"):
    """The ``--config`` paths of the containerd processes running on the host."""
    configs = []
    try:
        pids = [name for name in os.listdir(proc_root) if name.isdigit()]
    except OSError:
        return configs
    for pid in pids:
        try:
            with open(os.path.join(proc_root, pid, "cmdline"), "rb") as handle:
                argv = handle.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == "containerd":
            configs.append(config_of_command_line(argv) or DEFAULT_CONTAINERD_CONFIG)
    return configs


def containerd_store(
    data_root,
    proc_root="/proc",
    managed_config=MANAGED_CONFIG,
    system_config=DEFAULT_CONTAINERD_CONFIG,
    system_socket=SYSTEM_SOCKET,
):
    """The ContainerdStore of an engine on the containerd image store whose data-root is
    ``data_root``.

    A running containerd with dockerd's own configuration wins: its root is read from that file.
    With no such process (the engine is stopped), the managed store under the data-root counts
    when it exists and the host's containerd socket does not. Otherwise the host's containerd
    keeps the images, at the root its configuration names.
    """
    if managed_config in running_containerd_configs(proc_root):
        try:
            with open(managed_config, encoding="utf-8", errors="replace") as handle:
                root = parse_containerd_root(handle.read())
        except OSError:
            root = None
        root = os.path.normpath(root) if root and os.path.isabs(root) else None
        return ContainerdStore(
            root or os.path.join(data_root, MANAGED_ROOT),
            "managed",
            "dockerd runs its own containerd (%s)" % managed_config,
        )
    managed_root = os.path.join(data_root, MANAGED_ROOT)
    if os.path.isdir(os.path.join(managed_root, "io.containerd.metadata.v1.bolt")) and not (
        os.path.exists(system_socket)
    ):
        return ContainerdStore(
            managed_root,
            "managed",
            "the engine is stopped, %s holds dockerd's own containerd store and no host "
            "containerd answers on %s" % (managed_root, system_socket),
        )
    root, source = read_containerd_root(system_config)
    where = "set in %s" % source if source != "default" else "the default"
    return ContainerdStore(root, "system", "the host's containerd, root %s (%s)" % (root, where))


def is_within(path, directory):
    """True when ``path`` is ``directory`` or below it (both absolute and normalised)."""
    directory = directory.rstrip("/") + "/"
    return (path.rstrip("/") + "/").startswith(directory)
