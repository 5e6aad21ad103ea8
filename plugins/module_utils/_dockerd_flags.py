# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find the storage settings given to dockerd as command-line flags.

dockerd refuses to start when a directive is given both as a flag and in daemon.json, so the
flags in the docker systemd unit (and its drop-ins), in /etc/default/docker and in
/etc/sysconfig/docker* matter to anyone writing daemon.json. Every function takes a
``host_root`` prefix so that tests can hand it a fixture tree.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import glob
import os
import re
import shlex

UNIT_NAME = "docker.service"
# systemd's unit search path for system units, highest priority first.
UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
)
ENVIRONMENT_FILES = ("/etc/default/docker",)
ENVIRONMENT_GLOBS = ("/etc/sysconfig/docker*",)

# Flag -> the daemon.json key it sets.
LONG_FLAGS = {
    "--storage-driver": "storage-driver",
    "--storage-opt": "storage-opts",
    "--data-root": "data-root",
    "--graph": "data-root",
}
SHORT_FLAGS = {"-s": "storage-driver", "-g": "data-root"}

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _split(text):
    """Split a command line as a shell would (quotes, backslashes); None when unbalanced."""
    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError:
        return None


def storage_flags_in_words(words):
    """The storage settings in a list of command-line words: ``[(key, flag, value), ...]``.

    Knows the ``--flag=value``, ``--flag value``, ``-s value``, ``-s=value`` and ``-svalue``
    forms, as dockerd's flag parser does. A flag at the end without its value is skipped.
    """
    found = []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word.startswith("--"):
            name, equals, value = word.partition("=")
            key = LONG_FLAGS.get(name)
        elif word.startswith("-") and len(word) >= 2:
            name = word[:2]
            key = SHORT_FLAGS.get(name)
            rest = word[2:]
            equals = "=" if rest else ""
            value = rest[1:] if rest.startswith("=") else rest
        else:
            continue
        if key is None:
            continue
        if not equals:
            if index >= len(words):
                continue
            value = words[index]
            index += 1
        found.append((key, name, value))
    return found


def _finding(key, flag, value, path, line, variable=None):
    return {
        "key": key,
        "flag": flag,
        "value": value,
        "file": path,
        "line": line,
        "where": "%s:%d" % (path, line),
        "variable": variable,
    }


def logical_lines(text):
    """Lines of a systemd unit or shell environment file with backslash continuations joined:
    ``[(first_line_number, text, segments), ...]``, where ``segments`` lists the physical
    lines as ``(line_number, text)``."""
    result = []
    segments = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            segments.append((number, stripped[:-1]))
            continue
        segments.append((number, stripped))
        result.append((segments[0][0], " ".join(part for _n, part in segments), segments))
        segments = []
    if segments:
        result.append((segments[0][0], " ".join(part for _n, part in segments), segments))
    return result


def _locate(found, segments):
    """``[(key, flag, value, line)]``: each setting with the physical line its flag is on."""
    located = []
    cursor = 0
    for key, flag, value in found:
        # A long flag ends at "=", a blank or a quote; a short one may carry its value (-svfs).
        ending = "" if flag in SHORT_FLAGS else r"(?![\w-])"
        pattern = re.compile(r"(?:^|[\s\"'])" + re.escape(flag) + ending)
        for index in range(cursor, len(segments)):
            if pattern.search(segments[index][1]):
                cursor = index
                break
        located.append((key, flag, value, segments[cursor][0]))
    return located


def _read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def unit_files(host_root="/"):
    """The docker.service unit and its drop-ins in the order systemd reads them.

    Returns ``[(shown_path, real_path), ...]``: the unit from the highest-priority directory,
    then the ``docker.service.d/*.conf`` drop-ins sorted by file name, where a drop-in in a
    higher-priority directory hides one of the same name below it.
    """
    files = []
    for directory in UNIT_DIRS:
        candidate = _under(host_root, os.path.join(directory, UNIT_NAME))
        if os.path.isfile(candidate):
            files.append((os.path.join(directory, UNIT_NAME), candidate))
            break
    drop_ins = {}
    for directory in UNIT_DIRS:
        pattern = _under(host_root, os.path.join(directory, UNIT_NAME + ".d", "*.conf"))
        for real in sorted(glob.glob(pattern)):
            name = os.path.basename(real)
            if name not in drop_ins:
                drop_ins[name] = (os.path.join(directory, UNIT_NAME + ".d", name), real)
    files += [drop_ins[name] for name in sorted(drop_ins)]
    return files


def _under(host_root, path):
    return os.path.join(host_root, path.lstrip("/"))


def exec_start_lines(files):
    """The ExecStart= lines in force from ``unit_files``' result:
    ``[(path, first_line, command, segments)]`` (``segments`` as ``logical_lines`` gives them).

    An empty ``ExecStart=`` resets the ones read before it, as systemd does.
    """
    lines = []
    for shown, real in files:
        text = _read_text(real)
        if text is None:
            continue
        section = None
        for number, line, segments in logical_lines(text):
            stripped = line.strip()
            if not stripped or stripped[0] in "#;":
                continue
            if stripped.startswith("[") and stripped.endswith("]"):
                section = stripped[1:-1]
                continue
            if section != "Service":
                continue
            name, equals, value = stripped.partition("=")
            if not equals or name.strip() != "ExecStart":
                continue
            value = value.strip()
            if not value:
                lines = []
                continue
            # Prefixes such as "-" (ignore failure) or "+" (full privileges) precede the path.
            lines.append((shown, number, value.lstrip("-@:+!"), segments))
    return lines


def environment_assignments(text):
    """Shell variable assignments in an environment file: ``[(segments, name, words)]``."""
    found = []
    for _number, line, segments in logical_lines(text):
        match = _ASSIGNMENT.match(line)
        if not match:
            continue
        words = _split(match.group(2))
        if not words:
            continue
        # DOCKER_OPTS="-s overlay2 -g /srv/docker": the value is one word holding the flags.
        inner = []
        for word in words:
            inner += _split(word) or []
        found.append((segments, match.group(1), inner))
    return found


def find_storage_flags(host_root="/"):
    """Every storage setting given to dockerd as a flag on the host below ``host_root``.

    Returns ``{"findings": [...], "inactive": [...], "unit": path_or_None}``. Each finding has
    ``key`` (the daemon.json key), ``flag``, ``value``, ``file``, ``line``, ``where``
    (``file:line``) and ``variable`` (the environment variable holding it, or None).
    Settings in an environment file count only when the unit's ExecStart uses the variable
    (``$DOCKER_OPTS``), or when there is no docker.service at all (a SysV init script reads
    the file); the others are listed in ``inactive``.
    """
    files = unit_files(host_root)
    commands = exec_start_lines(files)
    findings = []
    used_variables = set()
    for shown, _number, command, segments in commands:
        for match in _VARIABLE.finditer(command):
            used_variables.add(match.group(1) or match.group(2))
        words = _split(command) or command.split()
        for key, flag, value, line in _locate(storage_flags_in_words(words[1:]), segments):
            findings.append(_finding(key, flag, value, shown, line))
    has_unit = any(shown.endswith("/" + UNIT_NAME) for shown, _real in files)

    environment = list(ENVIRONMENT_FILES)
    for pattern in ENVIRONMENT_GLOBS:
        for real in sorted(glob.glob(_under(host_root, pattern))):
            environment.append("/" + os.path.relpath(real, host_root))
    inactive = []
    for shown in environment:
        real = _under(host_root, shown)
        if not os.path.isfile(real):
            continue
        text = _read_text(real)
        if text is None:
            continue
        for segments, variable, words in environment_assignments(text):
            for key, flag, value, line in _locate(storage_flags_in_words(words), segments):
                finding = _finding(key, flag, value, shown, line, variable)
                if not has_unit or variable in used_variables:
                    findings.append(finding)
                else:
                    inactive.append(finding)
    return {
        "findings": findings,
        "inactive": inactive,
        "unit": files[0][0] if has_unit else None,
    }


def conflicts_with_config(findings, config):
    """The findings whose key daemon.json ``config`` also sets.

    dockerd refuses to start when a directive is both a flag and a key of the file; the
    deprecated ``-g``/``--graph`` is the exception: dockerd 20.10 silently prefers the file's
    data-root, and 23.0 removed the flag. Returns sentences, one per finding, naming the key,
    the file and line, and both values.
    """
    messages = []
    for finding in findings:
        key = finding["key"]
        if config.get(key) in (None, [], ""):
            continue
        both = "%s is set in daemon.json (%s) and as the dockerd flag %s %s in %s" % (
            key,
            json_value(config[key]),
            finding["flag"],
            finding["value"],
            finding["where"],
        )
        if finding["flag"] in ("-g", "--graph"):
            messages.append(
                "%s; dockerd 20.10 ignores the deprecated flag in favour of the file, and 23.0 "
                "and later refuse to start with it: remove the flag" % both
            )
        else:
            messages.append(
                "%s; dockerd refuses to start when a directive is given both ways: remove one "
                "of them" % both
            )
    return messages


def json_value(value):
    """A daemon.json value as it reads in a message."""
    if isinstance(value, list):
        return "[%s]" % ", ".join('"%s"' % item for item in value)
    return '"%s"' % value if isinstance(value, str) else str(value)
