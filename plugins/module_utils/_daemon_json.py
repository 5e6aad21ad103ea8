# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read, check and write dockerd's daemon.json.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

from ansible_collections.dockerhost.storage.plugins.module_utils._atomic_file import (
    write_text_atomically,
)

DEFAULT_DAEMON_JSON = "/etc/docker/daemon.json"
DEFAULT_DATA_ROOT = "/var/lib/docker"


class DaemonJsonError(Exception):
    """daemon.json exists but cannot be used; the message names the file and what to fix."""


def parse_daemon_json(text, path=DEFAULT_DAEMON_JSON):
    """Parse daemon.json text into a dict; raise DaemonJsonError naming the file and line."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        where = " at line %s" % line if line else ""
        raise DaemonJsonError(
            "%s is not valid JSON%s (%s); dockerd would refuse to start: fix or remove the file"
            % (path, where, getattr(exc, "msg", exc))
        ) from None
    if not isinstance(data, dict):
        raise DaemonJsonError("%s must hold a JSON object, found %s" % (path, type(data).__name__))
    return data


def read_daemon_json(path=DEFAULT_DAEMON_JSON):
    """Return the parsed file, ``{}`` when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise DaemonJsonError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    return parse_daemon_json(text, path)


def storage_settings(config):
    """The storage keys of a parsed daemon.json, with the legacy ``graph`` key folded in."""
    for key, wanted in (
        ("storage-driver", str),
        ("data-root", str),
        ("graph", str),
        ("storage-opts", list),
    ):
        if config.get(key) is not None and not isinstance(config[key], wanted):
            raise DaemonJsonError(
                "daemon.json key %s must be a %s, found %r; dockerd would refuse to start: fix the file"
                % (key, "string" if wanted is str else "list", config[key])
            )
    features = config.get("features") if isinstance(config.get("features"), dict) else {}
    snapshotter = features.get("containerd-snapshotter")
    return {
        "storage_driver": config.get("storage-driver") or None,
        "storage_opts": list(config.get("storage-opts") or []),
        "data_root": config.get("data-root") or config.get("graph") or None,
        "containerd_snapshotter": snapshotter if isinstance(snapshotter, bool) else None,
    }


UTF8_BOM = b"\xef\xbb\xbf"


class _DuplicateKey(ValueError):
    def __init__(self, key):
        super().__init__(key)
        self.key = key


def _refuse_duplicates(pairs):
    """object_pairs_hook for json.loads: build the object, refusing a key given twice."""
    result = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def parse_daemon_json_strict(raw, path=DEFAULT_DAEMON_JSON):
    """Parse daemon.json bytes for rewriting it; raise DaemonJsonError for anything doubtful.

    Stricter than ``parse_daemon_json``: a file about to be rewritten must be understood
    exactly, so a byte-order mark (dockerd's Go decoder rejects it), text that is not UTF-8,
    an empty file (usually the remains of an interrupted write), a key given twice (which of
    the values dockerd uses is not obvious to a reader), invalid JSON and JSON that is not an
    object are all refused. Key order is kept (dicts keep insertion order).
    """
    if raw.startswith(UTF8_BOM):
        raise DaemonJsonError(
            "%s starts with a UTF-8 byte-order mark, which dockerd rejects: save the file as "
            "UTF-8 without a byte-order mark" % path
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DaemonJsonError(
            "%s is not UTF-8 text (byte %d): save it as UTF-8" % (path, exc.start)
        ) from None
    if not text.strip():
        raise DaemonJsonError(
            "%s is empty, which is usually the remains of an interrupted write: write {} into "
            "it, or remove it, and run again" % path
        )
    try:
        data = json.loads(text, object_pairs_hook=_refuse_duplicates)
    except _DuplicateKey as exc:
        raise DaemonJsonError(
            "%s gives the key %r more than once: keep one of them" % (path, exc.key)
        ) from None
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        where = " at line %s column %s" % (line, exc.colno) if line else ""
        raise DaemonJsonError(
            "%s is not valid JSON%s (%s): fix the file, or remove it, and run again"
            % (path, where, getattr(exc, "msg", exc))
        ) from None
    if not isinstance(data, dict):
        raise DaemonJsonError(
            "%s must hold a JSON object ({...}), found a JSON %s: fix the file"
            % (path, _json_type_name(data))
        )
    return data


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
