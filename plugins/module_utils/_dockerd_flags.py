# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find the storage settings given to dockerd as command-line flags, and the configuration
file it reads.

dockerd refuses to start when a directive is given both as a flag and in daemon.json, and
with ``--config-file`` it reads that file instead of /etc/docker/daemon.json, so the flags
matter to anyone writing daemon.json. They come from the docker.service unit: the ExecStart
line in force, with the variables of the unit's Environment= and EnvironmentFile= settings
expanded as systemd expands them. Where systemd runs, ``systemctl show`` says how it loaded
the unit (``find_storage_flags`` asks it when ``host_root`` is ``/``); elsewhere (containers
without systemd, chroots, test trees) the unit and its drop-ins are read as systemd would read
them. Without a unit, /etc/default/docker and /etc/sysconfig/docker* are read as a SysV init
script reads them. The command line is parsed as dockerd's flag library (spf13/pflag) parses
it, grouped single-letter flags (``-Ds vfs``) included.

Every function takes a ``host_root`` prefix so that tests can hand it a fixture tree.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import glob
import os
import re
import shlex

from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import host_path

UNIT_NAME = "docker.service"
# systemd's unit search path for system units, highest priority first.
UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
)
# Read by the SysV init scripts of Debian (DOCKER_OPTS) and of RHEL-like systems.
ENVIRONMENT_FILES = ("/etc/default/docker",)
ENVIRONMENT_GLOBS = ("/etc/sysconfig/docker*",)
DEFAULT_CONFIG_FILE = "/etc/docker/daemon.json"
# Where a setting stands when systemd knows it but no unit file on disk says it (the unit
# changed on disk since systemd loaded it).
SYSTEMD_VIEW = "docker.service as systemd loaded it (systemctl show docker.service)"

# Flag -> the daemon.json key it sets; ``config-file`` is the file dockerd reads.
LONG_FLAGS = {
    "--storage-driver": "storage-driver",
    "--storage-opt": "storage-opts",
    "--data-root": "data-root",
    "--graph": "data-root",
    "--config-file": "config-file",
    "--userns-remap": "userns-remap",
}
SHORT_FLAGS = {"-s": "storage-driver", "-g": "data-root"}
# userns-remap moves the whole store into <data-root>/<uid>.<gid>.
STORAGE_KEYS = ("storage-driver", "storage-opts", "data-root", "userns-remap")
# dockerd's single-letter flags: the boolean ones take no value and may be grouped in front
# of another (``-Ds vfs`` is ``-D -s vfs``); the others take one (pflag also treats -h as
# help when no flag claims it).
BOOLEAN_SHORT = "Dhv"
VALUE_SHORT = "bGgHlps"
# dockerd's boolean long flags (20.10 to 29). Any other long flag takes a value: the word
# after it, unless that word is a flag itself (a flag unknown here that takes no value must
# not hide the flags behind it).
BOOLEAN_LONG = frozenset(
    "--" + name
    for name in (
        "allow-direct-routing",
        "bridge-accept-fwmark-disabled",
        "cri-containerd",
        "debug",
        "disable-legacy-registry",
        "experimental",
        "help",
        "icc",
        "init",
        "ip-forward",
        "ip-forward-no-drop",
        "ip-masq",
        "ip6tables",
        "iptables",
        "ipv6",
        "live-restore",
        "no-new-privileges",
        "raw-logs",
        "restart",
        "rootless",
        "selinux-enabled",
        "tls",
        "tlsverify",
        "userland-proxy",
        "validate",
        "version",
    )
)

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WHOLE_VARIABLE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_WHOLE_BRACED_VARIABLE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_BRACED_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_GLOB_CHARACTERS = re.compile(r"[*?[]")
_ESCAPES = {"n": "\n", "t": "\t", "s": " ", "r": "\r"}
_EXEC_PREFIXES = "-@:+!"


def split_words(text):
    """Split a unit setting or an environment value into words as systemd does: blanks
    separate words, double or single quotes keep blanks inside a word, a backslash escapes
    the next character (``\\n``, ``\\t``, ``\\s`` as in C). Returns None when a quote is
    not closed."""
    words = []
    index, length = 0, len(text)
    while True:
        while index < length and text[index].isspace():
            index += 1
        if index >= length:
            return words
        word = []
        quote = None
        while index < length:
            char = text[index]
            if char == "\\" and index + 1 < length:
                following = text[index + 1]
                word.append(_ESCAPES.get(following, following))
                index += 2
                continue
            if quote:
                if char == quote:
                    quote = None
                else:
                    word.append(char)
            elif char in "\"'":
                quote = char
            elif char.isspace():
                break
            else:
                word.append(char)
            index += 1
        if quote:
            return None
        words.append("".join(word))


def _value_words(value):
    """The words ``$VAR`` gives: the value split at blanks, quotes honoured."""
    words = split_words(value)
    return value.split() if words is None else words


def dockerd_flags_in_words(words):
    """The storage settings and the configuration file in dockerd's arguments ``words``:
    ``[(key, flag, value, index)]``, ``index`` being the word that holds the flag.

    Parses as dockerd's flag library does: ``--flag=value``, ``--flag value``, ``-s value``,
    ``-s=value``, ``-svalue``, boolean letters grouped in front (``-Ds vfs``, ``-Dsvfs``,
    ``-Ds=vfs``), the value of other flags skipped (``--label -s`` sets a label), and ``--``
    ends the flags. A flag at the end without its value is skipped.
    """
    found = []
    index = 0
    while index < len(words):
        word = words[index]
        position = index
        index += 1
        if word == "--":
            break
        if word.startswith("--"):
            name, equals, value = word.partition("=")
            if equals or name in BOOLEAN_LONG:
                key = LONG_FLAGS.get(name) if equals else None
            elif name in LONG_FLAGS:
                if index >= len(words):
                    continue
                key, value = LONG_FLAGS[name], words[index]
                index += 1
            else:
                if index < len(words) and not words[index].startswith("-"):
                    index += 1
                continue
            if key:
                found.append((key, name, value, position))
            continue
        if not word.startswith("-") or word == "-":
            continue
        letters = word[1:]
        while letters:
            letter = letters[0]
            if letter not in BOOLEAN_SHORT and letter not in VALUE_SHORT:
                break  # dockerd refuses an unknown shorthand flag
            if len(letters) > 2 and letters[1] == "=":
                value, letters = letters[2:], ""
            elif letter in BOOLEAN_SHORT:
                letters = letters[1:]
                continue
            elif len(letters) > 1:
                value, letters = letters[1:], ""
            elif index < len(words):
                value, letters = words[index], ""
                index += 1
            else:
                break
            key = SHORT_FLAGS.get("-" + letter)
            if key:
                found.append((key, "-" + letter, value, position))
    return found


def storage_flags_in_words(words):
    """The storage settings in a list of dockerd's arguments: ``[(key, flag, value), ...]``
    (``dockerd_flags_in_words`` without the configuration file)."""
    return [
        (key, flag, value)
        for key, flag, value, _index in dockerd_flags_in_words(words)
        if key in STORAGE_KEYS
    ]


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


def read_text(path):
    """The text of ``path``, or None when it cannot be read."""
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
        candidate = host_path(host_root, os.path.join(directory, UNIT_NAME))
        if os.path.isfile(candidate):
            files.append((os.path.join(directory, UNIT_NAME), candidate))
            break
    drop_ins = {}
    for directory in UNIT_DIRS:
        pattern = host_path(host_root, os.path.join(directory, UNIT_NAME + ".d", "*.conf"))
        for real in sorted(glob.glob(pattern)):
            name = os.path.basename(real)
            if name not in drop_ins:
                drop_ins[name] = (os.path.join(directory, UNIT_NAME + ".d", name), real)
    files += [drop_ins[name] for name in sorted(drop_ins)]
    return files


def service_settings(files):
    """The settings of the [Service] sections of ``files`` (``unit_files``' result), in the
    order systemd reads them: ``[(shown_path, first_line, name, value, segments)]``."""
    settings = []
    for shown, real in files:
        text = read_text(real)
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
            name, equals, value = stripped.partition("=")
            if section == "Service" and equals:
                settings.append((shown, number, name.strip(), value.strip(), segments))
    return settings


def exec_start_lines(files):
    """The ExecStart= lines in force from ``unit_files``' result:
    ``[(path, first_line, command, segments)]`` (``segments`` as ``logical_lines`` gives them).

    An empty ``ExecStart=`` resets the ones read before it, as systemd does. The prefixes
    (``-``, ``@``, ``:``, ``+``, ``!``) are left out of ``command``.
    """
    lines = []
    for shown, number, name, value, segments in service_settings(files):
        if name != "ExecStart":
            continue
        if not value:
            lines = []
            continue
        lines.append((shown, number, value.lstrip(_EXEC_PREFIXES), segments))
    return lines


def _origin(file, line=None, segments=None, variable=None):
    """Where a word of dockerd's command line comes from."""
    return {"file": file, "line": line, "segments": segments, "variable": variable}


def _environment_assignments(value, origin):
    """``Environment=`` ``NAME=value`` words: ``[(name, value, origin)]``."""
    found = []
    for word in split_words(value) or []:
        name, equals, assigned = word.partition("=")
        if equals and _NAME.match(name):
            found.append((name, assigned, origin))
    return found


def _environment_file_value(text):
    """An environment file's value: quotes removed, blanks inside kept, as systemd reads it."""
    value = []
    quote = None
    index = 0
    text = text.strip()
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text) and quote != "'":
            value.append(text[index + 1])
            index += 2
            continue
        if quote:
            if char == quote:
                quote = None
            else:
                value.append(char)
        elif char in "\"'":
            quote = char
        else:
            value.append(char)
        index += 1
    return "".join(value)


def environment_file_assignments(text, shown):
    """Variable assignments in an environment file: ``[(name, value, origin)]``."""
    found = []
    for number, line, segments in logical_lines(text):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        match = _ASSIGNMENT.match(line)
        if match:
            value = _environment_file_value(match.group(2))
            found.append((match.group(1), value, _origin(shown, number, segments)))
    return found


def _command(words, prefix, origin):
    """A command of ExecStart as ``(prefix, [(word, raw_word, origin)])`` without its path
    (and without argv[0] when the ``@`` prefix gives it)."""
    skip = 2 if "@" in prefix else 1
    return prefix, [(word, word, origin) for word in words[skip:]]


def unit_from_files(files):
    """The unit as ``unit_files``' files define it: ``{commands, environment,
    environment_files}`` (see ``find_storage_flags``)."""
    commands = []
    environment = []
    environment_files = []
    for shown, number, name, value, segments in service_settings(files):
        origin = _origin(shown, number, segments)
        if name == "ExecStart":
            if not value:
                commands = []
                continue
            command = value.lstrip(_EXEC_PREFIXES)
            prefix = value[: len(value) - len(command)]
            words = split_words(command)
            commands.append(_command(command.split() if words is None else words, prefix, origin))
        elif name == "Environment":
            if not value:
                environment = []
                continue
            environment += _environment_assignments(value, origin)
        elif name == "EnvironmentFile":
            if not value:
                environment_files = []
                continue
            environment_files.append((value.lstrip("-"), origin))
    return {
        "commands": commands,
        "environment": environment,
        "environment_files": environment_files,
    }


def parse_systemctl_show(text):
    """``systemctl show docker.service -p LoadState -p FragmentPath -p DropInPaths -p
    ExecStart -p Environment -p EnvironmentFiles`` output as a dict: ``load_state``,
    ``fragment_path``, ``drop_in_paths``, ``exec_start`` (argument lists, the path first),
    ``environment`` (``[(name, value)]``) and ``environment_files`` (paths)."""
    shown = {
        "load_state": None,
        "fragment_path": None,
        "drop_in_paths": [],
        "exec_start": [],
        "environment": [],
        "environment_files": [],
    }
    for line in text.splitlines():
        name, equals, value = line.partition("=")
        if not equals:
            continue
        if name == "LoadState":
            shown["load_state"] = value.strip()
        elif name == "FragmentPath":
            shown["fragment_path"] = value.strip() or None
        elif name == "DropInPaths":
            shown["drop_in_paths"] = _shell_words(value)
        elif name == "ExecStart":
            # systemctl joins the arguments with blanks, without quoting them.
            match = re.search(r"argv\[\]=(.*?) ; (?:ignore_errors|flags)=", value)
            if match:
                shown["exec_start"].append(match.group(1).split())
        elif name == "Environment":
            shown["environment"] += _shown_environment(value)
        elif name == "EnvironmentFiles":
            match = re.match(r"^(.*) \(ignore_errors=(?:yes|no)\)$", value)
            if match:
                shown["environment_files"].append(match.group(1))
    return shown


def _shell_words(value):
    try:
        return shlex.split(value)
    except ValueError:
        return value.split()


def _shown_environment(value):
    """systemctl's Environment= value: each assignment in shell quotes when it needs them;
    older systemd versions join them unquoted, so a word that is no assignment belongs to
    the one before it."""
    assignments = []
    for word in _shell_words(value):
        name, equals, assigned = word.partition("=")
        if equals and _NAME.match(name):
            assignments.append([name, assigned])
        elif assignments:
            assignments[-1][1] += " " + word
    return [tuple(pair) for pair in assignments]


def unit_from_systemd(shown, host_root="/"):
    """The unit as systemd loaded it (``parse_systemctl_show``'s result), in the shape of
    ``unit_from_files``. A word or an assignment is placed in the unit file or drop-in that
    says it when that file says the same today; otherwise only systemd knows where it is."""
    paths = ([shown["fragment_path"]] if shown["fragment_path"] else []) + shown["drop_in_paths"]
    on_disk = unit_from_files([(path, host_path(host_root, path)) for path in paths])
    nowhere = _origin(None)
    commands = []
    for argv in shown["exec_start"]:
        # systemctl shows argv[0] first, also when the "@" prefix gave it.
        located = [
            (prefix, words)
            for prefix, words in on_disk["commands"]
            if " ".join(word for word, _raw, _origin in words).split() == argv[1:]
        ]
        commands.append(located[-1] if located else _command(argv, "", nowhere))
    environment = []
    for name, value in shown["environment"]:
        origins = [o for n, v, o in on_disk["environment"] if (n, v) == (name, value)]
        environment.append((name, value, origins[-1] if origins else nowhere))
    environment_files = []
    for path in shown["environment_files"]:
        origins = [o for p, o in on_disk["environment_files"] if p == path]
        environment_files.append((path, origins[-1] if origins else nowhere))
    return {
        "commands": commands,
        "environment": environment,
        "environment_files": environment_files,
    }


def _substitute(word, environment, used):
    """``word`` with ``${VAR}`` replaced by the value and ``$$`` by ``$``; the variables met
    are added to ``used``. Returns ``(text, last_variable_or_None)``."""
    names = []

    def value_of(match):
        if match.group(1) is None:
            return "$"
        names.append(match.group(1))
        used.add(match.group(1))
        return environment.get(match.group(1), ("", None))[0]

    text = _BRACED_VARIABLE.sub(value_of, word)
    return text, names[-1] if names else None


def _expand(words, environment, used):
    """Expand ``$VAR`` (a word of its own: the value split into words) and ``${VAR}`` (inside
    a word: the value as it is) from ``environment`` (``{name: (value, origin)}``), and
    ``$$`` to ``$``, as systemd does in ExecStart. Adds the variables met to ``used``."""
    expanded = []
    for word, raw, origin in words:
        whole = _WHOLE_VARIABLE.match(word)
        if whole:
            name = whole.group(1)
            used.add(name)
            if name in environment:
                value, assigned = environment[name]
                from_variable = dict(assigned, variable=name)
                expanded += [(part, part, from_variable) for part in _value_words(value)]
            continue
        braced = _WHOLE_BRACED_VARIABLE.match(word)
        if braced and braced.group(1) in environment:
            # One word, all of it from the variable: it stands where the variable is set.
            name = braced.group(1)
            used.add(name)
            value, assigned = environment[name]
            expanded.append((value, value, dict(assigned, variable=name)))
            continue
        text, variable = _substitute(word, environment, used)
        expanded.append((text, raw, dict(origin, variable=variable) if variable else origin))
    return expanded


def _locate(raw, origin, cursors):
    """``(file, line)`` of the word ``raw`` from ``origin``: the first physical line from the
    last one found that holds the word, as continued lines are read in order."""
    segments = origin.get("segments")
    if not segments:
        return origin["file"], origin["line"]
    key = id(segments)
    start = cursors.get(key, 0)
    pattern = re.compile(r"(?:^|[\s\"'=])" + re.escape(raw) + r"(?=$|[\s\"'])")
    for index in range(start, len(segments)):
        if pattern.search(segments[index][1]):
            cursors[key] = index
            return origin["file"], segments[index][0]
    return origin["file"], segments[start][0]


def _finding(key, flag, value, file, line, variable=None):
    if file is None:
        where = SYSTEMD_VIEW
    elif line is None:
        where = file
    else:
        where = "%s:%d" % (file, line)
    return {
        "key": key,
        "flag": flag,
        "value": value,
        "file": file,
        "line": line,
        "where": where,
        "variable": variable,
    }


def _findings_in(words, cursors):
    """The findings of the expanded words ``[(word, raw, origin)]``."""
    findings = []
    for key, flag, value, index in dockerd_flags_in_words([word for word, _r, _o in words]):
        _word, raw, origin = words[index]
        file, line = _locate(raw, origin, cursors)
        findings.append(_finding(key, flag, value, file, line, origin["variable"]))
    return findings


def _assignment_findings(name, value, origin, cursors):
    words = [(word, word, dict(origin, variable=name)) for word in _value_words(value)]
    return _findings_in(words, cursors)


def _known_environment_files(host_root):
    paths = list(ENVIRONMENT_FILES)
    for pattern in ENVIRONMENT_GLOBS:
        for real in sorted(glob.glob(host_path(host_root, pattern))):
            paths.append("/" + os.path.relpath(real, host_root))
    return paths


def _read_environment_file(host_root, shown):
    real = host_path(host_root, shown)
    text = read_text(real) if os.path.isfile(real) else None
    return environment_file_assignments(text, shown) if text else []


def _ask_systemd():
    # Imported here: only a host_root of "/" may ask the live system.
    from ansible_collections.dockerhost.storage.plugins.module_utils._engine_service import (
        docker_unit_properties,
    )

    return docker_unit_properties()


def _docker_unit(host_root, systemd_answer):
    """docker.service as systemd loaded it, else as its files on disk say: ``(unit,
    unit_path, source)``, as ``find_storage_flags`` describes them."""
    if systemd_answer is None and os.path.normpath(host_root) == "/":
        systemd_answer = _ask_systemd()
    shown = parse_systemctl_show(systemd_answer) if systemd_answer else None
    if shown and shown["load_state"] == "loaded":
        unit = unit_from_systemd(shown, host_root)
        unit_path = shown["fragment_path"]
        source = "systemd"
    else:
        files = unit_files(host_root)
        unit = unit_from_files(files)
        unit_path = next((s for s, _r in files if s.endswith("/" + UNIT_NAME)), None)
        source = "files"
    return unit, unit_path, source


def _unit_assignments(unit, host_root):
    """The unit's variable assignments in the order systemd applies them, and the environment
    files it loads (globs expanded): ``(assignments, loaded)``."""
    # Environment= first, then the files in order: a later assignment wins.
    assignments = list(unit["environment"])
    loaded = []
    for pattern, _setting in unit["environment_files"]:
        paths = [pattern]
        if _GLOB_CHARACTERS.search(pattern):
            paths = [
                "/" + os.path.relpath(real, host_root)
                for real in sorted(glob.glob(host_path(host_root, pattern)))
            ]
        for path in paths:
            loaded.append(path)
            assignments += _read_environment_file(host_root, path)
    return assignments, loaded


def _unloaded_environment_findings(host_root, loaded, cursors):
    """The settings in the known environment files (/etc/default/docker,
    /etc/sysconfig/docker*) that the unit does not load, in order."""
    settings = []
    for path in _known_environment_files(host_root):
        if path in loaded:
            continue
        for name, value, origin in _read_environment_file(host_root, path):
            settings += _assignment_findings(name, value, origin, cursors)
    return settings


def find_storage_flags(host_root="/", systemd_answer=None):
    """Every storage setting given to dockerd as a flag on the host below ``host_root``, and
    the configuration file dockerd reads.

    Returns ``{"findings": [...], "inactive": [...], "unit": path_or_None, "config_file":
    finding_or_None, "source": "systemd"|"files"}``. Each finding has ``key`` (the daemon.json
    key), ``flag``, ``value``, ``file``, ``line``, ``where`` (``file:line``) and ``variable``
    (the environment variable holding it, or None); ``file`` and ``line`` are None when only
    systemd knows the setting (the unit changed on disk since systemd loaded it).
    ``config_file`` is the last ``--config-file`` flag (its ``key`` is ``config-file``, its
    ``value`` the file dockerd reads), or None when dockerd reads /etc/docker/daemon.json.

    The unit's ExecStart counts with the variables of its Environment= and EnvironmentFile=
    settings (the files' values override Environment=, as in systemd). ``systemd_answer`` is
    the text of ``systemctl show`` (``_engine_service.docker_unit_properties``); with the
    default None it is asked for when ``host_root`` is ``/`` and systemd runs, and then it is
    the truth (``source``: ``systemd``); otherwise the unit files are read (``files``). An
    assignment that sets flags but does not reach ExecStart (a variable it does not use, a
    file it does not load, a value overridden later) is listed in ``inactive``. Without a
    unit, every assignment in /etc/default/docker and /etc/sysconfig/docker* counts, as a
    SysV init script reads them.
    """
    unit, unit_path, source = _docker_unit(host_root, systemd_answer)
    assignments, loaded = _unit_assignments(unit, host_root)
    in_force = {name: index for index, (name, _value, _origin) in enumerate(assignments)}
    environment = {
        name: (assignments[index][1], assignments[index][2]) for name, index in in_force.items()
    }

    cursors = {}
    used = set()
    found = []
    for prefix, words in unit["commands"]:
        # The ":" prefix turns the expansion of variables off.
        expanded = words if ":" in prefix else _expand(words, environment, used)
        found += _findings_in(expanded, cursors)

    inactive = []
    for index, (name, value, origin) in enumerate(assignments):
        if name not in used or in_force[name] != index:
            inactive += _assignment_findings(name, value, origin, cursors)
    settings = _unloaded_environment_findings(host_root, loaded, cursors)
    # Without a unit, a SysV init script reads them all.
    if unit_path is None:
        found += settings
    else:
        inactive += settings

    config_files = [f for f in found if f["key"] == "config-file"]
    return {
        "findings": [f for f in found if f["key"] in STORAGE_KEYS],
        "inactive": [f for f in inactive if f["key"] in STORAGE_KEYS],
        "unit": unit_path,
        "config_file": config_files[-1] if config_files else None,
        "source": source,
    }


def _same_file(first, second):
    if os.path.realpath(first) == os.path.realpath(second):
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def config_file_problem(found, path, host_root="/", option="path"):
    """A sentence naming both files when dockerd reads another configuration file than
    ``path`` (``--config-file`` in ``found``, ``find_storage_flags``' result), else None.
    ``option`` names the setting that points at the file, for the advice."""
    flag = found.get("config_file")
    if not flag:
        return None
    in_force = os.path.normpath(os.path.join("/", flag["value"]))
    real = host_path(host_root, in_force)
    if _same_file(real, path):
        return None
    return (
        "dockerd reads its configuration from %s (%s %s in %s), not from %s, so a change to "
        "%s would have no effect: set %s to %s, or remove the flag first"
        % (in_force, flag["flag"], flag["value"], flag["where"], path, path, option, real)
    )


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
