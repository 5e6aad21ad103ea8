# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read what the kernel offers to storage drivers, from files only.

Every function takes ``host_root`` (``/`` on a live host, a fixture tree in tests) and reads
/proc, /sys, /boot, /etc and /lib/modules below it. Nothing here runs a command or changes
anything.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import glob
import gzip
import os
import re

MODPROBE_DIRS = (
    "etc/modprobe.d",
    "run/modprobe.d",
    "usr/local/lib/modprobe.d",
    "lib/modprobe.d",
    "usr/lib/modprobe.d",
)

# `install <module> <command>` with one of these commands makes loading the module a no-op:
# the usual hardening idiom to disable a filesystem.
_DISABLING_COMMANDS = {
    "true",
    "false",
    "/bin/true",
    "/bin/false",
    "/usr/bin/true",
    "/usr/bin/false",
}


def host_path(host_root, path):
    """Join an absolute host path below ``host_root``."""
    return os.path.join(host_root, path.lstrip("/"))


def _read_text(host_root, path):
    with open(host_path(host_root, path), encoding="utf-8", errors="replace") as handle:
        return handle.read()


def kernel_release(host_root):
    """The running kernel's release string (``uname -r``), or None when unreadable."""
    try:
        return _read_text(host_root, "/proc/sys/kernel/osrelease").strip() or None
    except OSError:
        return None


def parse_kernel_version(release):
    """``"6.1.0-18-amd64"`` -> ``(6, 1, 0)``; None when the release has no leading version."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release or "")
    if not match:
        return None
    return tuple(int(part or 0) for part in match.groups())


def read_filesystems(host_root):
    """Filesystem types the kernel knows now (/proc/filesystems), as a set of names."""
    try:
        text = _read_text(host_root, "/proc/filesystems")
    except OSError:
        return set()
    names = set()
    for line in text.splitlines():
        parts = line.split()
        if parts:
            names.add(parts[-1])
    return names


def parse_kernel_config(text):
    """Parse kernel config text into ``{"CONFIG_X": "y"|"m"|value}``; unset options are "n"."""
    config = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            config[line[2 : -len(" is not set")]] = "n"
            continue
        if line.startswith("CONFIG_") and "=" in line:
            key, value = line.split("=", 1)
            config[key] = value.strip('"')
    return config


def read_kernel_config(host_root, release):
    """Return ``(config_dict, source, problem)``.

    Looks at /proc/config.gz, then /boot/config-<release>. When neither is readable the dict is
    empty, source is None and problem says why, so callers can report "unknown" instead of
    guessing.
    """
    problems = []
    candidates = ["/proc/config.gz"]
    if release:
        candidates.append("/boot/config-%s" % release)
    for candidate in candidates:
        full = host_path(host_root, candidate)
        try:
            if candidate.endswith(".gz"):
                with gzip.open(full, "rt", encoding="utf-8", errors="replace") as handle:
                    text = handle.read()
            else:
                with open(full, encoding="utf-8", errors="replace") as handle:
                    text = handle.read()
        except FileNotFoundError:
            problems.append("%s does not exist" % candidate)
            continue
        except (OSError, EOFError) as exc:
            problems.append("%s is not readable (%s)" % (candidate, exc))
            continue
        return parse_kernel_config(text), candidate, None
    return {}, None, "kernel config not found: " + "; ".join(problems)


def _module_file_names(name):
    base = name.replace("-", "_")
    return {base, name}


def _module_path_matches(path, name):
    filename = os.path.basename(path.strip())
    stem = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", filename)
    return stem.replace("-", "_") == name.replace("-", "_")


def modules_listing(host_root, release, listing):
    """Module paths in /lib/modules/<release>/<listing> (modules.builtin or modules.dep)."""
    if not release:
        return None
    try:
        text = _read_text(host_root, "/lib/modules/%s/%s" % (release, listing))
    except OSError:
        return None
    if listing == "modules.dep":
        return [line.split(":", 1)[0] for line in text.splitlines() if line.strip()]
    return [line.strip() for line in text.splitlines() if line.strip()]


def modprobe_directives(host_root, name):
    """``blacklist`` and disabling ``install`` lines for module ``name`` in modprobe.d.

    Returns a list of dicts ``{"file", "line", "kind", "text"}``; kind is ``blacklist`` or
    ``install``. Also reads ``module_blacklist=`` and ``modprobe.blacklist=`` on the kernel
    command line.
    """
    wanted = _module_file_names(name)
    found = []
    for directory in MODPROBE_DIRS:
        for conf in sorted(glob.glob(os.path.join(host_path(host_root, directory), "*.conf"))):
            try:
                with open(conf, encoding="utf-8", errors="replace") as handle:
                    lines = handle.read().splitlines()
            except OSError:
                continue
            shown = "/" + os.path.relpath(conf, host_root).lstrip("./")
            for number, raw in enumerate(lines, start=1):
                words = raw.split("#", 1)[0].split()
                if len(words) < 2 or words[1].replace("-", "_") not in wanted:
                    continue
                if words[0] == "blacklist":
                    found.append(
                        {"file": shown, "line": number, "kind": "blacklist", "text": raw.strip()}
                    )
                elif words[0] == "install" and len(words) >= 3 and words[2] in _DISABLING_COMMANDS:
                    found.append(
                        {"file": shown, "line": number, "kind": "install", "text": raw.strip()}
                    )
    try:
        cmdline = _read_text(host_root, "/proc/cmdline").split()
    except OSError:
        cmdline = []
    for word in cmdline:
        key, dummy, value = word.partition("=")
        if key in ("module_blacklist", "modprobe.blacklist"):
            if wanted & {item.replace("-", "_") for item in value.split(",")}:
                found.append(
                    {"file": "/proc/cmdline", "line": 1, "kind": "blacklist", "text": word}
                )
    return found


def module_parameters(host_root, name):
    """Parameters of a kernel module from /sys/module/<name>/parameters as strings."""
    directory = host_path(host_root, "/sys/module/%s/parameters" % name)
    params = {}
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return params
    for entry in entries:
        try:
            with open(os.path.join(directory, entry), encoding="utf-8", errors="replace") as handle:
                params[entry] = handle.read().strip()
        except OSError:
            continue
    return params


def filesystem_support(host_root, release, fs_name, module_name, config_key, kernel_config):
    """How the kernel offers a filesystem type used by a storage driver.

    Returns ``{"available", "how", "blocked_by", "blacklisted_by", "detail"}`` where ``how`` is
    ``builtin``, ``loaded``, ``loadable``, ``absent``, or ``unknown`` (``available`` None) when
    the filesystem is not registered and neither a kernel config nor /lib/modules can tell. ``blocked_by`` lists ``install <mod>
    /bin/true`` style lines that stop a loadable module from ever loading; ``blacklisted_by``
    lists ``blacklist`` lines, which only stop loading by alias (a mount), not an explicit
    ``modprobe`` such as the one dockerd runs.
    """
    directives = modprobe_directives(host_root, module_name)
    blocked = ["%s:%d" % (d["file"], d["line"]) for d in directives if d["kind"] == "install"]
    blacklisted = ["%s:%d" % (d["file"], d["line"]) for d in directives if d["kind"] == "blacklist"]
    result = {
        "available": False,
        "how": "absent",
        "blocked_by": blocked,
        "blacklisted_by": blacklisted,
    }

    if fs_name in read_filesystems(host_root):
        loadable_state = os.path.exists(
            host_path(host_root, "/sys/module/%s/initstate" % module_name)
        )
        result.update(available=True, how="loaded" if loadable_state else "builtin")
        return result

    builtin_listing = modules_listing(host_root, release, "modules.builtin")
    builtin = builtin_listing or []
    if (
        any(_module_path_matches(path, module_name) for path in builtin)
        or kernel_config.get(config_key) == "y"
    ):
        # Built in but not registered is odd (a fixture or a partial /proc); trust the listing.
        result.update(available=True, how="builtin")
        return result

    dep_listing = modules_listing(host_root, release, "modules.dep")
    dep = dep_listing or []
    if (
        any(_module_path_matches(path, module_name) for path in dep)
        or kernel_config.get(config_key) == "m"
    ):
        result["how"] = "loadable"
        result["available"] = not blocked
        return result
    if not kernel_config and builtin_listing is None and dep_listing is None:
        # Not registered, and nothing says whether it could be: no kernel config and no
        # /lib/modules for this release (a container, a stripped image). Absent is a guess.
        result.update(available=None, how="unknown")
    return result
