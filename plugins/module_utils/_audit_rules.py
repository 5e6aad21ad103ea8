# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which files and directories the Linux audit rules watch (CIS Docker Benchmark v1.6.0
1.1.3-1.1.18), and whether a path is covered.

The rules in force are what ``auditctl -l`` lists where auditd runs (the kernel's own view);
elsewhere, or for a tree that stands for another host's ``/``, the rule files
(``/etc/audit/audit.rules`` and ``/etc/audit/rules.d/*.rules``) are read. A watch (``-w PATH``)
on a directory covers everything below it, as does ``-F dir=PATH``; ``-F path=PATH`` covers
that path only. A path is covered when a rule names it or, after symbolic links are resolved,
the file it is.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import glob
import os
import subprocess

from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    DEFAULT_SEARCH_PATH,
    find_executable,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import (
    host_path,
    is_within,
)

RULE_FILES = ("/etc/audit/audit.rules",)
RULE_GLOBS = ("/etc/audit/rules.d/*.rules",)


def watches(text):
    """``[(path, recursive)]`` of the watch rules in audit rule text (``auditctl -l`` output or
    a rule file): ``-w PATH`` (recursive when PATH is a directory, which only the host can
    tell: marked None), ``-F dir=PATH`` (recursive) and ``-F path=PATH`` (that path only)."""
    found = []
    for line in (text or "").splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        for index, word in enumerate(words[:-1]):
            value = words[index + 1]
            if word == "-w":
                found.append((os.path.normpath(value), None))
            elif word == "-F" and value.startswith("dir="):
                found.append((os.path.normpath(value[4:]), True))
            elif word == "-F" and value.startswith("path="):
                found.append((os.path.normpath(value[5:]), False))
    return found


def covered_by(path, rules, real_path=None):
    """The rule path that covers ``path`` (or the file it resolves to, ``real_path``), or
    None. ``rules`` are ``[(path, recursive)]`` as ``audit_rules`` returns them."""
    for candidate in [path] + ([real_path] if real_path and real_path != path else []):
        for watched, recursive in rules:
            if candidate == watched or (recursive and is_within(candidate, watched)):
                return watched
    return None


def loaded_rules(timeout=10):
    """The text of ``auditctl -l`` where it answers with rules, else None (auditctl missing,
    not permitted, the audit system off, or no rules loaded)."""
    auditctl = find_executable("auditctl", DEFAULT_SEARCH_PATH)
    if auditctl is None:
        return None
    try:
        completed = subprocess.run(
            [auditctl, "-l"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(os.environ, LANG="C", LC_ALL="C"),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = completed.stdout
    if completed.returncode != 0 or not text.strip() or text.strip() == "No rules":
        return None
    return text


def rule_file_text(host_root="/"):
    """``(text, [files read])`` of the audit rule files under ``host_root``."""
    paths = [host_path(host_root, path) for path in RULE_FILES]
    for pattern in RULE_GLOBS:
        paths += sorted(glob.glob(host_path(host_root, pattern)))
    texts, read = [], []
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                texts.append(handle.read())
        except OSError:
            continue
        read.append(path)
    return "\n".join(texts), read


def audit_rules(host_root="/"):
    """``{source, files, rules}``: where the watch rules come from (``auditctl`` on the live
    host when it lists rules, else ``files``, None when there are none) and the rules as
    ``[path, recursive]`` (a ``-w`` is recursive when its path is a directory on the host)."""
    source, read, text = None, [], loaded_rules() if _on_host(host_root) else None
    if text is not None:
        source = "auditctl"
    else:
        text, read = rule_file_text(host_root)
    rules = [
        [path, os.path.isdir(host_path(host_root, path)) if recursive is None else recursive]
        for path, recursive in watches(text)
    ]
    if rules and source is None:
        source = "files"
    return {"source": source, "files": read, "rules": rules}


def _on_host(host_root):
    return os.path.normpath(host_root) == "/"


# CIS 1.1.3-1.1.18: what each check wants watched. ``binary`` targets are looked for on the
# search path; the others are named by the caller (the paths the host really uses).
TARGETS = (
    ("dockerd", "1.1.3", "the Docker daemon", "binary"),
    ("run_containerd", "1.1.4", "containerd's state directory", "/run/containerd"),
    ("data_root", "1.1.5", "the data-root", None),
    ("etc_docker", "1.1.6", "the configuration directory", None),
    ("docker_service", "1.1.7", "the unit file docker.service", None),
    ("containerd_sock", "1.1.8", "containerd's socket", None),
    ("docker_socket", "1.1.9", "the unit file docker.socket", None),
    ("default_docker", "1.1.10", "the environment file", "/etc/default/docker"),
    ("daemon_json", "1.1.11", "daemon.json", None),
    ("containerd_config", "1.1.12", "containerd's configuration", None),
    ("sysconfig_docker", "1.1.13", "the environment file", "/etc/sysconfig/docker"),
    ("containerd", "1.1.14", "containerd", "binary"),
    ("containerd_shim", "1.1.15", "containerd-shim", "binary"),
    ("containerd_shim_runc_v1", "1.1.16", "containerd-shim-runc-v1", "binary"),
    ("containerd_shim_runc_v2", "1.1.17", "containerd-shim-runc-v2", "binary"),
    ("runc", "1.1.18", "runc", "binary"),
)


# Where docker-bench-security and the CIS InSpec profile look: a rule there does not cover a
# host that keeps the file elsewhere (a moved data-root, a unit in /usr/lib, dockerd in /usr/sbin).
DEFAULT_PATHS = {
    "dockerd": ("/usr/bin/dockerd",),
    "data_root": ("/var/lib/docker",),
    "etc_docker": ("/etc/docker",),
    "docker_service": (
        "/lib/systemd/system/docker.service",
        "/usr/lib/systemd/system/docker.service",
    ),
    "containerd_sock": ("/run/containerd/containerd.sock",),
    "docker_socket": (
        "/lib/systemd/system/docker.socket",
        "/usr/lib/systemd/system/docker.socket",
    ),
    "daemon_json": ("/etc/docker/daemon.json",),
    "containerd_config": ("/etc/containerd/config.toml",),
    "containerd": ("/usr/bin/containerd",),
    "containerd_shim": ("/usr/bin/containerd-shim",),
    "containerd_shim_runc_v1": ("/usr/bin/containerd-shim-runc-v1",),
    "containerd_shim_runc_v2": ("/usr/bin/containerd-shim-runc-v2",),
    "runc": ("/usr/bin/runc", "/usr/sbin/runc"),
}


def binary_path(name, host_root="/"):
    """The first ``name`` on the engine's search path under ``host_root``, as a host path."""
    for directory in DEFAULT_SEARCH_PATH:
        shown = os.path.join(directory, name)
        if os.path.isfile(host_path(host_root, shown)):
            return shown
    return None


def targets(host_root, unit_paths, live_paths):
    """``{name: {path, exists}}`` for each of ``TARGETS`` (``covered_by`` is added by
    ``judge``). Binaries, /run/containerd, the environment files and the unit files
    (``unit_paths``: docker_service, docker_socket) are looked for under ``host_root``;
    ``live_paths`` (data_root, etc_docker, daemon_json, containerd_config, containerd_sock)
    are the paths the modules use as they are."""
    found = {}
    for name, _cis, _what, where in TARGETS:
        root = host_root
        if where == "binary":
            path = binary_path(name.replace("_", "-"), host_root)
        elif where is not None:
            path = where
        elif name in live_paths:
            path, root = live_paths[name], "/"
        else:
            path = unit_paths.get(name)
        found[name] = {
            "path": path,
            "exists": bool(path) and os.path.lexists(host_path(root, path)),
        }
    return found


def judge(found, rules, host_root="/"):
    """Fill ``covered_by`` of each target of ``found`` with the rule path that covers it."""
    for entry in found.values():
        entry["covered_by"] = None
        if entry["exists"]:
            real = None
            if _on_host(host_root):
                real = os.path.realpath(entry["path"])
            entry["covered_by"] = covered_by(os.path.normpath(entry["path"]), rules, real)
    return found
