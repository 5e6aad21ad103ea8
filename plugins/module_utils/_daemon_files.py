# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files and sockets of the Docker daemon that CIS Docker Benchmark section 3 judges, found
where this host keeps them, with their owner and mode.

- docker.service and docker.socket: the unit files systemd loaded (``FragmentPath``) where
  systemd runs, else the first in systemd's search path;
- the Docker socket: the one the Engine API is asked on (``docker_host``);
- the containerd socket: the ``[grpc] address`` of containerd's configuration, else its default;
- /etc/default/docker and /etc/sysconfig/docker.

The unit files and the environment files are looked for under ``host_root``; the sockets are
the live ones. Reads only. Private to the dockerhost.storage collection: the API may change
without notice.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat

from ansible_collections.dockerhost.storage.plugins.module_utils._dockerd_flags import (
    UNIT_DIRS,
    read_text,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    socket_path_from_docker_host,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import host_path

DEFAULT_CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
SOCKET_UNIT = "docker.socket"

# The [grpc] table's address key: the socket containerd listens on.
_GRPC_TABLE = re.compile(r"^\s*\[\s*grpc\s*\]\s*(?:#.*)?$")
_TABLE = re.compile(r"^\s*\[")
_ADDRESS = re.compile(r"""^\s*address\s*=\s*(?:"([^"]*)"|'([^']*)')\s*(?:#.*)?$""")


def path_permissions(path):
    """Owner, group and mode of ``path``, or ``exists: false`` (also for a ``path`` of None).
    Symbolic links are followed: the target is what dockerd reads."""
    entry = {
        "path": path,
        "exists": False,
        "uid": None,
        "gid": None,
        "owner": None,
        "group": None,
        "mode": None,
    }
    try:
        info = os.stat(path)
    except (OSError, TypeError):
        return entry
    entry.update(
        exists=True,
        uid=info.st_uid,
        gid=info.st_gid,
        owner=_name(pwd.getpwuid, info.st_uid),
        group=_name(grp.getgrgid, info.st_gid),
        mode="%04o" % stat.S_IMODE(info.st_mode),
    )
    return entry


def _name(lookup, number):
    try:
        return lookup(number)[0]
    except KeyError:
        return None


def containerd_socket(config_text):
    """The socket containerd listens on: ``[grpc] address`` of its configuration's text (None
    when there is no file), else the default."""
    table = None
    for line in (config_text or "").splitlines():
        if _TABLE.match(line):
            table = "grpc" if _GRPC_TABLE.match(line) else "other"
            continue
        match = _ADDRESS.match(line)
        if table == "grpc" and match:
            address = match.group(1) if match.group(1) is not None else match.group(2)
            return address[len("unix://") :] if address.startswith("unix://") else address
    return DEFAULT_CONTAINERD_SOCKET


def unit_file(name, host_root="/", systemd_answer=None):
    """The path of the unit file ``name`` on the host: ``FragmentPath`` from ``systemd_answer``
    (the text of ``systemctl show``) when systemd loaded it, else the first file of that name in
    systemd's search path under ``host_root``. None when there is none, or the unit is masked
    (systemd's answer, or a link to /dev/null in the search path): no file is in use then."""
    shown = dict(
        line.partition("=")[::2] for line in (systemd_answer or "").splitlines() if "=" in line
    )
    if shown.get("LoadState"):
        path = (shown.get("FragmentPath") or "").strip()
        if shown["LoadState"].strip() != "loaded" or not path or path == os.devnull:
            return None
        return path
    for directory in UNIT_DIRS:
        shown_path = os.path.join(directory, name)
        real = host_path(host_root, shown_path)
        if os.path.lexists(real) and os.path.realpath(real) == os.devnull:
            return None  # masked
        if os.path.isfile(real):
            return shown_path
    return None


def _ask_systemd(unit):
    # Imported here: only a host_root of "/" may ask the live system.
    from ansible_collections.dockerhost.storage.plugins.module_utils._engine_service import (
        unit_properties,
    )

    return unit_properties(unit, ("LoadState", "FragmentPath"))


def _entry(host_root, shown):
    """path_permissions of ``shown`` (a host path, looked for under ``host_root``), under the
    host's own path; ``exists: false`` for None."""
    entry = path_permissions(host_path(host_root, shown) if shown else None)
    entry["path"] = shown
    return entry


def daemon_files(host_root, docker_host, service_unit, containerd_config):
    """``{name: entry}`` of the files and sockets of section 3, each a ``path_permissions``
    entry whose ``path`` is the host's own (None when the host has no such file).
    ``service_unit`` is the docker.service file found for the flags (``find_storage_flags``'
    ``unit``), or None."""
    on_host = os.path.normpath(host_root) == "/"
    socket_unit = unit_file(SOCKET_UNIT, host_root, _ask_systemd(SOCKET_UNIT) if on_host else None)
    try:
        docker_socket = socket_path_from_docker_host(docker_host)
    except ValueError:
        docker_socket = None
    return {
        "docker_service": _entry(host_root, service_unit),
        "docker_socket_unit": _entry(host_root, socket_unit),
        "default_docker": _entry(host_root, "/etc/default/docker"),
        "sysconfig_docker": _entry(host_root, "/etc/sysconfig/docker"),
        # The sockets are the live ones, whatever tree stands for the host's files.
        "docker_sock": _entry("/", docker_socket),
        "containerd_sock": _entry("/", containerd_socket(read_text(containerd_config))),
    }
