# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the storage keys of dockerd's daemon.json.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import json

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
