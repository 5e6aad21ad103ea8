# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine in force on a host and the data-root it uses, as every module of the collection
sees them: the Engine API first, then the dockerd binary and daemon.json, then the defaults.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os
from collections import namedtuple

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _daemon_json,
    _dockerd_flags,
    _drivers,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._daemon_json import (
    DEFAULT_DATA_ROOT,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    EngineClient,
    EngineUnavailable,
    dockerd_binary_version,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError
from ansible_collections.dockerhost.storage.plugins.module_utils._userns_remap import (
    split_remapped_root,
)


class EngineStateError(StorageError):
    """Input or engine answers that make the engine or the data-root unknowable; the message
    names the option or the source and what to do."""


def engine_info_from_api(version, system, socket_path):
    """The ``engine`` facts from the Engine API's /version and /info answers.

    Raises EngineUnavailable naming the socket when the answers are not what the API documents.
    """
    if not isinstance(version, dict) or not isinstance(system, dict):
        raise EngineUnavailable(
            "the Engine API on %s answered something other than a JSON object" % socket_path
        )
    for key, value in (
        ("Version", version.get("Version")),
        ("DockerRootDir", system.get("DockerRootDir")),
        ("Driver", system.get("Driver")),
    ):
        if value is not None and not isinstance(value, str):
            raise EngineUnavailable(
                "the Engine API on %s gave %s as %r, not a string" % (socket_path, key, value)
            )
    data_root, remapped_root = system.get("DockerRootDir"), None
    userns = _userns_remapped(system.get("SecurityOptions"))
    if userns and data_root:
        # Under userns-remap DockerRootDir is the remapped root, <data-root>/<uid>.<gid>: the
        # data-root (what daemon.json and --data-root name) is its parent.
        data_root, remapped_root = split_remapped_root(data_root)
    return {
        "version": version.get("Version"),
        "version_source": "api",
        "api_version": version.get("ApiVersion"),
        "running_driver": system.get("Driver"),
        "data_root": data_root,
        "driver_status": _driver_status(system.get("DriverStatus")),
        "userns_remap": userns,
        "remapped_root": remapped_root,
    }


def engine_data_root(system):
    """The data-root an /info answer (``system``) names, normalised: its DockerRootDir, or under
    userns-remap the parent of it (DockerRootDir is then ``<data-root>/<uid>.<gid>``); "" when
    it names none."""
    root = system.get("DockerRootDir") or ""
    if root and _userns_remapped(system.get("SecurityOptions")):
        root = split_remapped_root(root)[0]
    return os.path.normpath(root) if root else ""


def _userns_remapped(security_options):
    """True when /info's SecurityOptions list ``name=userns`` (userns-remap in force)."""
    if not isinstance(security_options, list):
        return False
    return any(
        isinstance(option, str) and "name=userns" in option.split(",")
        for option in security_options
    )


def _driver_status(raw):
    """/info's DriverStatus (a list of [name, value] pairs) as a dict; {} when malformed."""
    if not isinstance(raw, list):
        return {}
    return {
        pair[0]: pair[1]
        for pair in raw
        if isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
    }


def detect_engine(docker_host, given_version=None, client=None):
    """Return ``(engine_info, version_tuple, client)`` for the engine on ``docker_host``.

    ``engine_info`` has ``version``, ``version_source`` (``option``, ``api``, ``binary`` or
    ``none``), ``api_version``, ``running_driver``, ``data_root`` (under userns-remap the
    parent of the engine's DockerRootDir), ``driver_status``, ``userns_remap`` (the engine
    says it is in force; None without an answer), ``remapped_root`` (``"<uid>.<gid>"`` or
    None) and ``problem`` (why the API did not answer, or None). ``client`` is the EngineClient when the
    API answered, else None. Without any engine the version is the current one
    (``_drivers.CURRENT_ENGINE``). Raises EngineStateError for a bad ``docker_host`` or
    ``given_version``.
    """
    info = {
        "version": None,
        "version_source": "none",
        "api_version": None,
        "running_driver": None,
        "data_root": None,
        "driver_status": {},
        "userns_remap": None,
        "remapped_root": None,
        "problem": None,
    }
    if client is None:
        try:
            client = EngineClient(docker_host)
        except ValueError as exc:
            raise EngineStateError(str(exc)) from None
    try:
        info.update(engine_info_from_api(client.version(), client.info(), client.socket_path))
    except EngineUnavailable as exc:
        client = None
        info["problem"] = str(exc)
        binary_version, _binary, problem = dockerd_binary_version()
        if binary_version:
            info.update(version=binary_version, version_source="binary")
        elif problem:
            info["problem"] += "; " + problem
    if given_version:
        check_release_name(given_version)
        info.update(version=given_version, version_source="option")
    try:
        engine = (
            _drivers.parse_engine_version(info["version"])
            if info["version"]
            else _drivers.CURRENT_ENGINE
        )
    except ValueError as exc:
        raise EngineStateError("engine_version: %s" % exc) from None
    return info, engine, client


def check_release_name(text):
    """Refuse versions no Docker release had, which is what YAML makes of an unquoted 20.10.

    Releases before 23.0 were named year.month with two-digit months (17.03 ... 20.10); an
    unquoted ``20.10`` in YAML is the float 20.1 and reaches the module as "20.1".
    """
    parts = str(text).strip().lstrip("v").split(".")
    if (
        len(parts) >= 2
        and parts[0].isdigit()
        and int(parts[0]) < 23
        and parts[1].isdigit()
        and len(parts[1]) == 1
    ):
        raise EngineStateError(
            "engine_version: %r is not a Docker release (before 23.0 they were year.month, such as "
            "20.10); if you wrote 20.10 unquoted, YAML made it the number 20.1: quote it, "
            'engine_version: "20.10"' % text
        )


def uses_containerd_store(engine_info):
    """True when the running engine keeps images in containerd's content store (snapshotters)."""
    status = engine_info.get("driver_status") or {}
    return status.get("driver-type") == "io.containerd.snapshotter.v1"


def check_absolute_path(value, option="path"):
    """Return ``value`` normalised; raise EngineStateError unless it is an absolute path."""
    if not isinstance(value, str) or not value:
        raise EngineStateError("%s must be an absolute path, got %r" % (option, value))
    if "\0" in value:
        raise EngineStateError("%s must not contain a NUL byte" % option)
    if not os.path.isabs(value):
        raise EngineStateError("%s must be absolute, got %r" % (option, value))
    return os.path.normpath(value)


def resolve_data_root(given, engine_info, settings):
    """Return ``(data_root, source)``: the data-root to examine and where it came from.

    ``given`` (the module option) wins, then the engine's DockerRootDir, then ``data-root`` in
    daemon.json (``settings`` from ``_daemon_json.storage_settings``), then /var/lib/docker.
    Source is ``option``, ``engine``, ``daemon.json`` or ``default``.
    """
    if given:
        path = check_absolute_path(given)
        if os.path.exists(path) and not os.path.isdir(path):
            raise EngineStateError(
                "path %s is not a directory; give the data-root directory" % path
            )
        return path, "option"
    for value, source in (
        (engine_info.get("data_root"), "engine"),
        (settings.get("data_root"), "daemon.json"),
    ):
        if value:
            if not isinstance(value, str) or "\0" in value or not os.path.isabs(value):
                raise EngineStateError(
                    "the data-root from %s is %r, not an absolute path; give path explicitly"
                    % (source, value)
                )
            return os.path.normpath(value), source
    return DEFAULT_DATA_ROOT, "default"


EngineInForce = namedtuple(
    "EngineInForce",
    ["settings", "engine_info", "engine", "client", "data_root", "data_root_source", "warnings"],
)


def engine_in_force(
    docker_host,
    config_path,
    path=None,
    engine_version=None,
    strict_config=False,
    host_root="/",
):
    """The storage settings of daemon.json, the engine and the data-root in force, found the
    same way by every module. Returns an EngineInForce.

    A daemon.json that cannot be used becomes a warning (and empty settings) for modules that
    only read; with ``strict_config`` (modules that will rewrite it) it raises EngineStateError,
    as bad options and answers do, and so does a ``--config-file`` flag of dockerd (found
    below ``host_root``) that names another file than ``config_path``: rewriting a file dockerd
    does not read would change nothing.
    """
    warnings = []
    if strict_config:
        problem = _dockerd_flags.config_file_problem(
            _dockerd_flags.find_storage_flags(host_root), config_path, host_root, "config_path"
        )
        if problem:
            raise EngineStateError(problem)
    try:
        if strict_config:
            config = _daemon_json.read_daemon_json_for_update(config_path)[1]
        else:
            config = _daemon_json.read_daemon_json(config_path)
        settings = _daemon_json.storage_settings(config)
    except _daemon_json.DaemonJsonError as exc:
        if strict_config:
            raise EngineStateError(str(exc)) from None
        warnings.append(str(exc))
        settings = _daemon_json.storage_settings({})
    engine_info, engine, client = detect_engine(docker_host, engine_version)
    data_root, source = resolve_data_root(path, engine_info, settings)
    return EngineInForce(settings, engine_info, engine, client, data_root, source, warnings)
