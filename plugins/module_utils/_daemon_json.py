# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read, check and write dockerd's daemon.json.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import tempfile

from ansible_collections.dockerhost.storage.plugins.module_utils._atomic_file import (
    write_text_atomically,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError

DEFAULT_DAEMON_JSON = "/etc/docker/daemon.json"
DEFAULT_DATA_ROOT = "/var/lib/docker"


class DaemonJsonError(StorageError):
    """daemon.json exists but cannot be used; the message names the file and what to fix."""


def parse_daemon_json(text, path=DEFAULT_DAEMON_JSON):
    """Parse daemon.json text into a dict for reading; raise DaemonJsonError naming the file,
    the line and what to do.

    Refuses what ``_decode`` refuses: what dockerd's decoder refuses, a lone surrogate escape
    and nesting beyond MAX_NESTING. An empty file reads as ``{}``, and a key given twice
    takes its last value, as in dockerd.
    """
    if not text.strip():
        return {}
    return _decode(text, path, refuse_duplicates=False)


def read_daemon_json(path=DEFAULT_DAEMON_JSON):
    """Return the parsed file, ``{}`` when it does not exist."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise DaemonJsonError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    return parse_daemon_json(_utf8_text(raw, path), path)


def storage_settings(config):
    """The storage keys of a parsed daemon.json, with the legacy ``graph`` key folded in."""
    for key, wanted in (
        ("storage-driver", str),
        ("data-root", str),
        ("graph", str),
        ("storage-opts", list),
        ("userns-remap", str),
    ):
        if config.get(key) is not None and not isinstance(config[key], wanted):
            raise DaemonJsonError(
                "daemon.json key %s must be a %s, found %r; dockerd would refuse to start: fix the file"
                % (key, "string" if wanted is str else "list", config[key])
            )
    features = config.get("features")
    if features is not None and not isinstance(features, dict):
        raise DaemonJsonError(
            "daemon.json key features must be an object, found %r; dockerd would refuse to "
            "start: fix the file" % (features,)
        )
    snapshotter = (features or {}).get("containerd-snapshotter")
    if snapshotter is not None and not isinstance(snapshotter, bool):
        # A quoted "true" is the usual slip; every engine refuses it (a Go bool).
        raise DaemonJsonError(
            "daemon.json key features.containerd-snapshotter must be true or false, found %r; "
            "dockerd would refuse to start: fix the file" % (snapshotter,)
        )
    return {
        "storage_driver": config.get("storage-driver") or None,
        "storage_opts": list(config.get("storage-opts") or []),
        "data_root": config.get("data-root") or config.get("graph") or None,
        "containerd_snapshotter": snapshotter if isinstance(snapshotter, bool) else None,
        # The remapped root, <data-root>/<uid>.<gid>, holds the store when this is set.
        "userns_remap": config.get("userns-remap") or None,
    }


UTF8_BOM = b"\xef\xbb\xbf"

# dockerd reads daemon.json with Go's encoding/json, which refuses more than Python's json
# module does. Each difference is refused here with its own sentence (dockerd 20.10's own
# words, seen on this project's test machine, are quoted):
# - NaN, Infinity and -Infinity are not JSON: Python accepts them, Go refuses them
#   ("invalid character 'N' looking for beginning of value").
# - A number beyond the range of a 64-bit float (1e400, or an integer of more than 309
#   digits): Python reads inf, which a rewrite would turn into Infinity, or an exact integer;
#   Go refuses it ("json: cannot unmarshal number 1e400 into Go value of type float64").
# - A \uD800-\uDFFF escape without the other half of its surrogate pair: Go reads it as
#   U+FFFD, the replacement character ("bad attribute format: \ufffd" for a label), so
#   dockerd would not see what the file says; Python keeps a lone surrogate, which cannot be
#   written back as UTF-8. It is refused rather than replaced: a rewrite must not change a
#   value nobody asked to change, and the operator should decide what the value was meant to be.
# - Nesting: Go stops at 10000 levels ("exceeded max depth"); Python's decoder runs out of
#   recursion near 1000 levels. No dockerd setting nests more than a few levels, so a file
#   that nests deeper than MAX_NESTING is refused before it is decoded.
MAX_NESTING = 100
_NOT_JSON_CONSTANTS = ("NaN", "Infinity", "-Infinity")
# JSON tokens that matter to the checks below; everything else (blanks, commas, colons,
# true, false, null) falls between the matches. A string is one token, so brackets and
# escapes inside strings are not mistaken for structure.
_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|[\[\]{}]|-?Infinity|NaN|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?',
    re.S,
)
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.S)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class _DuplicateKey(ValueError):
    def __init__(self, key):
        super().__init__(key)
        self.key = key


class _RefusedToken(ValueError):
    """A number or constant that Python's decoder accepts and dockerd's refuses."""


def _refuse_duplicates(pairs):
    """object_pairs_hook for json.loads: build the object, refusing a key given twice."""
    result = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _refuse_constant(token):
    raise _RefusedToken(token)


def _float_in_range(token):
    value = float(token)
    if math.isinf(value):
        raise _RefusedToken(token)
    return value


def _int_in_range(token):
    # float() reads any number of digits; int() of a long one may hit Python's digit limit.
    if math.isinf(float(token)):
        raise _RefusedToken(token)
    return int(token)


def _line_column(text, offset):
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _is_refused_token(token):
    if token in _NOT_JSON_CONSTANTS:
        return True
    if token[0] in "-0123456789":
        return math.isinf(float(token))
    return False


def _refused_token_message(text, path):
    """The sentence for the first NaN, Infinity or out-of-range number in ``text``."""
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"' or token in ("[", "]", "{", "}") or not _is_refused_token(token):
            continue
        line, column = _line_column(text, match.start())
        if token in _NOT_JSON_CONSTANTS:
            return (
                "%s holds %s at line %d column %d, which is not a JSON value, and dockerd "
                "refuses the file: write a number (or remove the key) and run again"
                % (path, token, line, column)
            )
        shown = token if len(token) <= 24 else token[:20] + "..."
        return (
            "%s holds the number %s at line %d column %d, beyond the range dockerd reads "
            "(a 64-bit float, up to about 1.8e308), and dockerd refuses the file: write a "
            "smaller number and run again" % (path, shown, line, column)
        )
    return "%s holds a number or constant dockerd refuses: fix the file" % path


def _check_nesting(text, path):
    """Raise DaemonJsonError when arrays and objects nest deeper than MAX_NESTING."""
    depth = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_NESTING:
                line, column = _line_column(text, match.start())
                raise DaemonJsonError(
                    "%s nests arrays and objects more than %d levels deep (at line %d column "
                    "%d); no dockerd setting needs more than a few levels: fix the file, or "
                    "remove it, and run again" % (path, MAX_NESTING, line, column)
                )
        elif token in ("]", "}"):
            depth = max(depth - 1, 0)


def _lone_surrogate_escape(string_token):
    """The first ``\\uXXXX`` match of a JSON string literal that is half of a surrogate pair
    without its other half, or None."""
    pending = None
    for match in _ESCAPE.finditer(string_token):
        code = int(match.group(1), 16) if match.group(1) else None
        if pending is not None:
            if code is not None and 0xDC00 <= code <= 0xDFFF and match.start() == pending.end():
                pending = None
                continue
            return pending
        if code is None:
            continue
        if 0xD800 <= code <= 0xDBFF:
            pending = match
        elif 0xDC00 <= code <= 0xDFFF:
            return match
    return pending


def _check_surrogates(text, path):
    """Raise DaemonJsonError for a string escape dockerd would read as U+FFFD."""
    if not _SURROGATE_ESCAPE.search(text):
        return
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token[0] != '"':
            continue
        lone = _lone_surrogate_escape(token)
        if lone is None:
            continue
        line, column = _line_column(text, match.start() + lone.start())
        raise DaemonJsonError(
            "%s holds the escape %s at line %d column %d, half of a UTF-16 surrogate pair "
            "without its other half; dockerd would read it as U+FFFD (the replacement "
            "character), not as what the file says: write the character itself, or both "
            "halves of the pair, and run again" % (path, lone.group(), line, column)
        )


def _syntax_advice(text, position):
    """What to do about a JSON syntax error at ``position``."""
    if text[position : position + 2] in ("//", "/*") or text[position : position + 1] == "#":
        return "JSON has no comments: remove the comment and run again"
    if text[position : position + 1] in ("}", "]") and text[:position].rstrip().endswith(","):
        return "remove the comma before the closing bracket and run again"
    return "fix the file, or remove it, and run again"


def _utf8_text(raw, path):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DaemonJsonError(
            "%s is not UTF-8 text (byte %d): save it as UTF-8" % (path, exc.start)
        ) from None


def _decode(text, path, refuse_duplicates):
    """The JSON object in ``text``, refused as dockerd's decoder refuses it (see above)."""
    if text.startswith("\ufeff"):
        raise DaemonJsonError(
            "%s starts with a UTF-8 byte-order mark, which dockerd rejects: save the file as "
            "UTF-8 without a byte-order mark" % path
        )
    _check_nesting(text, path)
    try:
        data = json.loads(
            text,
            object_pairs_hook=_refuse_duplicates if refuse_duplicates else None,
            parse_constant=_refuse_constant,
            parse_float=_float_in_range,
            parse_int=_int_in_range,
        )
    except _DuplicateKey as exc:
        raise DaemonJsonError(
            "%s gives the key %r more than once: keep one of them" % (path, exc.key)
        ) from None
    except _RefusedToken:
        raise DaemonJsonError(_refused_token_message(text, path)) from None
    except RecursionError:
        raise DaemonJsonError(
            "%s nests arrays and objects too deeply to be read: fix the file" % path
        ) from None
    except json.JSONDecodeError as exc:
        raise DaemonJsonError(
            "%s is not valid JSON at line %s column %s (%s): %s"
            % (path, exc.lineno, exc.colno, exc.msg, _syntax_advice(text, exc.pos))
        ) from None
    except ValueError as exc:
        raise DaemonJsonError(
            "%s is not valid JSON (%s): fix the file, or remove it, and run again" % (path, exc)
        ) from None
    if not isinstance(data, dict):
        raise DaemonJsonError(
            "%s must hold a JSON object ({...}), found a JSON %s: fix the file"
            % (path, _json_type_name(data))
        )
    _check_surrogates(text, path)
    return data


def parse_daemon_json_strict(raw, path=DEFAULT_DAEMON_JSON):
    """Parse daemon.json bytes for rewriting it; raise DaemonJsonError for anything doubtful.

    Stricter than ``parse_daemon_json``: a file about to be rewritten must be understood
    exactly, so on top of what dockerd refuses (see ``_decode``: a byte-order mark, text
    that is not UTF-8, invalid JSON, NaN and Infinity, numbers out of range, JSON that is
    not an object) an empty file (usually the remains of an interrupted write), a key given
    twice (which of the values dockerd uses is not obvious to a reader), a lone surrogate
    escape and nesting beyond MAX_NESTING are refused. Key order is kept (dicts keep
    insertion order).
    """
    if raw.startswith(UTF8_BOM):
        raise DaemonJsonError(
            "%s starts with a UTF-8 byte-order mark, which dockerd rejects: save the file as "
            "UTF-8 without a byte-order mark" % path
        )
    text = _utf8_text(raw, path)
    if not text.strip():
        raise DaemonJsonError(
            "%s is empty, which is usually the remains of an interrupted write: write {} into "
            "it, or remove it, and run again" % path
        )
    return _decode(text, path, refuse_duplicates=True)


def _json_type_name(value):
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def read_daemon_json_for_update(path=DEFAULT_DAEMON_JSON):
    """Read daemon.json for rewriting: ``(raw_bytes, config)``, ``(None, {})`` when absent.

    Raises DaemonJsonError naming the file and what to do when it is a directory, cannot be
    read, or fails ``parse_daemon_json_strict``.
    """
    if os.path.isdir(path):
        raise DaemonJsonError(
            "%s is a directory, not a file: move it out of the way or point path at the "
            "configuration file" % path
        )
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None, {}
    except OSError as exc:
        raise DaemonJsonError(
            "cannot read %s: %s; make it a readable regular file" % (path, exc.strerror or exc)
        ) from None
    return raw, parse_daemon_json_strict(raw, path)


# CIS Docker Benchmark 3.17/3.18: daemon.json owned by root:root, mode 0644 or stricter.
NEW_FILE_MODE = 0o644
NEW_DIRECTORY_MODE = 0o755


def mode_problems(path):
    """Sentences for an existing daemon.json that is looser than CIS 3.17/3.18 allow."""
    try:
        info = os.stat(path)
    except OSError:
        return []
    problems = []
    mode = info.st_mode & 0o7777
    if mode & ~NEW_FILE_MODE:
        problems.append(
            "%s has mode %04o, looser than 0644 (CIS Docker Benchmark 3.18): chmod 0644 it"
            % (path, mode)
        )
    if info.st_uid != 0 or info.st_gid != 0:
        problems.append(
            "%s is owned by %d:%d, not root:root (CIS Docker Benchmark 3.17): chown root:root it"
            % (path, info.st_uid, info.st_gid)
        )
    return problems


def make_parent_directories(path):
    """Create the missing directories above ``path`` (root-owned, 0755); return them."""
    missing = []
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(missing):
        os.mkdir(directory, NEW_DIRECTORY_MODE)
        os.chmod(directory, NEW_DIRECTORY_MODE)  # mkdir's mode is filtered by the umask
    return list(reversed(missing))


def write_daemon_json_atomically(path, text):
    """Replace daemon.json at ``path`` with ``text`` in one step (``write_text_atomically``):
    the owner and mode of the file it replaces are kept, a new file is root:root 0644."""
    write_text_atomically(path, text, NEW_FILE_MODE)


def dockerd_offers_validate(dockerd):
    """True when ``dockerd --help`` lists --validate (Docker Engine 23.0 and later)."""
    completed = _run_c_locale([dockerd, "--help"], timeout=30)
    return completed is not None and "--validate" in completed[1]


def validate_with_dockerd(dockerd, text, directory):
    """Run ``dockerd --validate --config-file <temporary copy of text>``.

    Returns ``(ok, output)``; the temporary file in ``directory`` is removed afterwards.
    """
    handle, temporary = tempfile.mkstemp(prefix="daemon-json-", suffix=".json", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        completed = _run_c_locale([dockerd, "--validate", "--config-file", temporary], timeout=60)
    finally:
        os.unlink(temporary)
    if completed is None:
        return False, "%s --validate could not be run or timed out" % dockerd
    returncode, output = completed
    return returncode == 0, output.strip().replace(temporary, "<candidate daemon.json>")


def _run_c_locale(argv, timeout):
    env = dict(os.environ, LANG="C", LC_ALL="C")
    try:
        completed = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.returncode, completed.stdout + completed.stderr
