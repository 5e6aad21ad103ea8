# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which containerd keeps an engine's images when the engine uses the containerd image store,
and where that containerd's root is.

dockerd either talks to the host's containerd (a service of its own, root from
/etc/containerd/config.toml, /var/lib/containerd by default) or, when no such containerd answers
at its start and none is configured, runs its own: ``containerd --config
/var/run/docker/containerd/containerd.toml``, whose root dockerd sets to
``<data-root>/containerd/daemon``. Only in the second case does the image store move with the
data-root. When it is the host's, moving the images means moving containerd's root too: this
file also edits that root in containerd's configuration (``config_with_root``, keeping every other
byte), stops and starts containerd's service, and asks containerd which namespaces (clients) keep
data there.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os
import re
from collections import namedtuple

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _engine_service,
    _mountinfo,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._atomic_file import (
    write_text_atomically,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._capacity import (
    DEFAULT_CONTAINERD_CONFIG,
    DEFAULT_CONTAINERD_ROOT,
    parse_containerd_root,
    read_containerd_root,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    DEFAULT_SEARCH_PATH,
    find_executable,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError

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


def _containerd_processes(proc_root="/proc"):
    """``(pid, argv)`` of every running containerd process (not its shims)."""
    try:
        pids = [name for name in os.listdir(proc_root) if name.isdigit()]
    except OSError:
        return
    for pid in pids:
        try:
            with open(os.path.join(proc_root, pid, "cmdline"), "rb") as handle:
                argv = handle.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == "containerd":
            yield pid, argv


def running_containerd_configs(proc_root="/proc"):
    """The ``--config`` paths of the containerd processes running on the host."""
    return [
        config_of_command_line(argv) or DEFAULT_CONTAINERD_CONFIG
        for _pid, argv in _containerd_processes(proc_root)
    ]


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


# ---- moving the host containerd's root --------------------------------------------------------

# The namespaces dockerd keeps in containerd: its images and containers, and its plugins.
DOCKER_NAMESPACES = ("moby", "plugins.moby")
# The file containerd keeps open under its root while it runs.
METADATA_DB = os.path.join("io.containerd.metadata.v1.bolt", "meta.db")

_TABLE = re.compile(r"^\s*\[")
_ROOT_KEY = re.compile(r"""^(\s*(?:root|"root"|'root')\s*=\s*)(.*?)(\r?\n)?$""")
_ROOT_VALUE = re.compile(r"""^(?:"((?:[^"\\\x00-\x1f]|\\.)*)"|'([^'\x00-\x1f]*)')(\s*(?:#.*)?)$""")
_IMPORTS_KEY = re.compile(r"""^\s*(?:imports|"imports"|'imports')\s*=""")


class ContainerdError(StorageError):
    """containerd's root cannot be moved as asked; the message names the file or command and
    what to do. Nothing was changed."""


def toml_basic_string(text):
    """``text`` as a TOML basic string (quotes and backslashes escaped)."""
    if re.search(r"[\x00-\x1f\x7f]", text):
        raise ContainerdError("the path %r holds a control character: choose another" % (text,))
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


def config_with_root(text, root, path=DEFAULT_CONTAINERD_CONFIG):
    """The text of containerd's ``config.toml`` (``text``; None when there is no file) with its
    top-level ``root`` set to ``root``, every other byte unchanged.

    An existing ``root = ...`` line before the first table keeps its indentation, spacing,
    comment and line ending; without one, ``root = "..."`` goes after the last top-level key
    (before the blank lines that lead to the first table), ending as the file's lines end.
    Raises ContainerdError, naming ``path``, where an edit could not be trusted: a byte-order
    mark, ``imports`` (another file may set the root), ``root`` given twice or not as a
    one-line string, a multi-line string or array among the top-level keys, or a result that
    does not read back as the old settings with the new root (checked with ``tomllib`` where
    Python has it, 3.11 and later).
    """
    line_end = "\r\n" if text and "\r\n" in text else "\n"
    line = "root = %s%s" % (toml_basic_string(root), line_end)
    if text is None:
        # No file: containerd's defaults, and this root. Version 2 is read by containerd 1.5
        # and later, and migrated by 2.x.
        return "version = 2\n" + line
    if text.startswith("\ufeff"):
        raise ContainerdError(
            "%s starts with a byte-order mark, which TOML does not allow: remove it first" % path
        )
    # TOML ends lines at LF only (a CR before it belongs to the line ending).
    lines = [piece for piece in re.split(r"(?<=\n)", text) if piece]
    top, found = _top_level(lines, path)
    if len(found) > 1:
        raise ContainerdError(
            "%s sets root more than once (lines %s): containerd refuses such a file; fix it first"
            % (path, ", ".join(str(index + 1) for index in found))
        )
    if not found:
        at = top
        while at and not lines[at - 1].strip():
            at -= 1
        if at and not lines[at - 1].endswith("\n"):
            lines[at - 1] += line_end
        lines.insert(at, line)
    else:
        index = found[0]
        key, value, newline = _ROOT_KEY.match(lines[index]).groups()
        match = _ROOT_VALUE.match(value.rstrip("\r"))
        if not match:
            raise ContainerdError(
                "%s line %d sets root to %s, not a one-line string: set it by hand"
                % (path, index + 1, value.strip())
            )
        ending = "\r" if value.endswith("\r") else ""
        lines[index] = key + toml_basic_string(root) + match.group(3) + ending + (newline or "")
    edited = "".join(lines)
    _check_read_back(text, edited, root, path)
    return edited


def _top_level(lines, path):
    """``(index of the first table header, indexes of the top-level root lines)``; raises
    ContainerdError for what a line-by-line edit cannot be sure of."""
    found = []
    depth = 0
    for index, line in enumerate(lines):
        if depth == 0 and _TABLE.match(line):
            return index, found
        if '"""' in line or "'''" in line:
            raise ContainerdError(
                "%s line %d has a multi-line string among the top-level keys: the root cannot "
                "be set safely there; set 'root' by hand, or give containerd_config_path a "
                "simpler file" % (path, index + 1)
            )
        code = re.sub(r"#.*", "", re.sub(r""""(?:[^"\\]|\\.)*"|'[^']*'""", '""', line))
        depth += code.count("[") + code.count("{") - code.count("]") - code.count("}")
        if depth:
            raise ContainerdError(
                "%s line %d starts an array or table that goes on over several lines among the "
                "top-level keys: the root cannot be set safely there; set it by hand"
                % (path, index + 1)
            )
        if _IMPORTS_KEY.match(line):
            raise ContainerdError(
                "%s imports other files (line %d), which may set the root too: set 'root' by "
                "hand, then run again" % (path, index + 1)
            )
        if _ROOT_KEY.match(line):
            found.append(index)
    return len(lines), found


def _check_read_back(before, after, root, path):
    if os.path.normpath(parse_containerd_root(after) or "") != os.path.normpath(root):
        raise ContainerdError(
            "the edited %s would not read back as root %s; nothing was written" % (path, root)
        )
    try:
        import tomllib
    except ImportError:  # Python before 3.11: the line rules above have to do
        return
    try:
        wanted = dict(tomllib.loads(before), root=root)
        got = tomllib.loads(after)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ContainerdError(
            "%s is not TOML that can be edited safely (%s): fix it, or set 'root' by hand"
            % (path, exc)
        ) from None
    if got != wanted:
        raise ContainerdError(
            "the edited %s would change more than root; nothing was written: set 'root' by hand"
            % path
        )


def configured_root(text):
    """The root a containerd with configuration ``text`` (None: no file) uses."""
    root = parse_containerd_root(text or "")
    if root and os.path.isabs(root):
        return os.path.normpath(root)
    return DEFAULT_CONTAINERD_ROOT


def layer_users(root, mountinfo_path="/proc/self/mountinfo"):
    """Mounts (container roots) whose layers lie under containerd's ``root``, as sentences: an
    overlay mount names its lower, upper and work directories in its options."""
    prefix = os.path.normpath(root) + "/"
    users = []
    for entry in _mountinfo.read_mountinfo(mountinfo_path):
        if entry.fstype == "overlay" and prefix in entry.super_options:
            users.append("%s is an overlay mount of layers there" % entry.mount_point)
    return users


def paths_under(text, root):
    """Quoted paths below ``root`` that ``text`` (a config.toml) names in settings other than
    the top-level root, such as Debian's ``[plugins."io.containerd.internal.v1.opt"] path``."""
    prefix = root.rstrip("/") + "/"
    found = []
    for line in (text or "").splitlines():
        if _ROOT_KEY.match(line) and not line.startswith((" ", "\t")):
            continue
        for match in re.finditer(r"""["']([^"']+)["']""", line):
            if match.group(1).startswith(prefix) and match.group(1) not in found:
                found.append(match.group(1))
    return found


class ContainerdRootSwitch:
    """Writes containerd's root into its configuration file, and puts the old text back."""

    def __init__(self, path=DEFAULT_CONTAINERD_CONFIG):
        # A link stays a link: the file it points to is rewritten.
        self.path = os.path.realpath(path)
        self.shown_path = path

    def current(self):
        """The file's text now, or None when there is none."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ContainerdError("cannot read %s: %s" % (self.shown_path, exc)) from None

    def planned(self, root):
        """The text the switch would write (raises ContainerdError as ``config_with_root``)."""
        return config_with_root(self.current(), root, self.shown_path)

    def switch(self, root):
        """Write ``root``; return the previous text (None: there was no file)."""
        previous = self.current()
        text = config_with_root(previous, root, self.shown_path)
        os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
        write_text_atomically(self.path, text, 0o644)
        return previous

    def restore(self, previous):
        if previous is None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        else:
            write_text_atomically(self.path, previous, 0o644)

    def describe(self, source, target):
        return "%s names containerd's root %s (was %s)" % (self.shown_path, target, source)


def _run(argv, timeout):
    """``_engine_service.run`` with its failures as ContainerdError; the command's output."""
    try:
        return _engine_service.run_checked(argv, timeout)
    except _engine_service.ServiceError as exc:
        raise ContainerdError(str(exc)) from None


def namespaces(socket=SYSTEM_SOCKET, timeout=30, search_path=DEFAULT_SEARCH_PATH):
    """The namespaces the containerd on ``socket`` holds, asked with ``ctr``. Raises
    ContainerdError when ctr is missing or containerd does not answer."""
    ctr = find_executable("ctr", search_path)
    if ctr is None:
        raise ContainerdError(
            "ctr (containerd's client) is not installed, so the namespaces in containerd's root "
            "cannot be listed"
        )
    output = _run([ctr, "--address", socket, "namespaces", "list", "--quiet"], timeout)
    return sorted(name for name in output.split() if name)


def foreign_namespaces(names):
    """The namespaces of clients other than dockerd (Kubernetes' ``k8s.io``, ``default``...)."""
    return [name for name in names if name not in DOCKER_NAMESPACES]


class ContainerdService:
    """The host's containerd.service, stopped after the engine and started before it."""

    UNIT = "containerd.service"

    def __init__(self, manager, timeout=120):
        self.manager = manager
        self.timeout = timeout

    def describe(self):
        return "systemctl stop/start %s" % self.UNIT

    def _call(self, action):
        if self.manager != "systemd":
            raise ContainerdError(
                "the host's containerd can be stopped and started only through systemd (%s); "
                "it is %s here" % (self.UNIT, self.manager)
            )
        if action in ("start", "restart"):
            # containerd.service has no start limit of its own, but the default one (5 in 10 s)
            # applies; see _engine_service.reset_start_limit.
            _engine_service.reset_start_limit([self.UNIT], self.timeout)
        _run(["systemctl", action, self.UNIT], self.timeout)

    def stop(self):
        self._call("stop")

    def start(self):
        self._call("start")

    def restart(self):
        self._call("restart")


def holds_root(root, proc_root="/proc"):
    """True when a running containerd process has ``root``'s metadata database open.

    Files are compared by identity (device and inode, through ``/proc/<pid>/fd``), not by the
    path the link shows: that path depends on the mount namespace and root of the reader."""
    try:
        wanted = os.stat(os.path.join(root, METADATA_DB))
    except OSError:
        return False
    for pid, _argv in _containerd_processes(proc_root):
        fd_dir = os.path.join(proc_root, pid, "fd")
        try:
            descriptors = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in descriptors:
            try:
                held = os.stat(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if (held.st_dev, held.st_ino) == (wanted.st_dev, wanted.st_ino):
                return True
    return False
