# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stop and start the Docker engine through the host's service manager: systemd (docker.service
and docker.socket, so that socket activation does not start it again behind our back) or the
init script where systemd is not PID 1 (containers, older or minimal distributions).

This file touches the live system.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os
import subprocess
import time

from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    DEFAULT_SEARCH_PATH,
    EngineUnavailable,
    find_executable,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError

DEFAULT_INIT_SCRIPT = "/etc/init.d/docker"
SYSTEMD_UNITS = ("docker.socket", "docker.service")


class ServiceError(StorageError):
    """The engine could not be stopped or started; the message names the command and output."""


def detect_manager(
    requested="auto", init_script=DEFAULT_INIT_SCRIPT, run_dir="/run/systemd/system"
):
    """``systemd`` or ``sysvinit`` for ``requested`` = auto: systemd when it runs as the init
    system (its runtime directory exists), else the init script. Raises ServiceError when the
    one asked for (or found) cannot be used."""
    if requested == "auto":
        requested = "systemd" if os.path.isdir(run_dir) else "sysvinit"
    if requested == "systemd" and not find_executable("systemctl", DEFAULT_SEARCH_PATH):
        raise ServiceError("service_manager is systemd but systemctl is not installed")
    if requested == "sysvinit" and not os.access(init_script, os.X_OK):
        raise ServiceError(
            "no executable init script at %s; set init_script, or service_manager: systemd"
            % init_script
        )
    return requested


# The properties of docker.service that decide dockerd's command line and its environment.
DOCKER_UNIT_PROPERTIES = (
    "LoadState",
    "FragmentPath",
    "DropInPaths",
    "ExecStart",
    "Environment",
    "EnvironmentFiles",
)


def docker_unit_properties(run_dir="/run/systemd/system", timeout=30):
    """The output of ``systemctl show docker.service -p ...`` (``DOCKER_UNIT_PROPERTIES``):
    how systemd loaded the unit, drop-ins, resets and environment applied. None where
    systemd does not run as the init system, or when systemctl cannot answer."""
    return unit_properties(SYSTEMD_UNITS[1], DOCKER_UNIT_PROPERTIES, run_dir, timeout)


def unit_properties(unit, properties, run_dir="/run/systemd/system", timeout=30):
    """The output of ``systemctl show <unit> -p <each of properties>``; None where systemd
    does not run as the init system, or when systemctl cannot answer."""
    if not os.path.isdir(run_dir):
        return None
    systemctl = find_executable("systemctl", DEFAULT_SEARCH_PATH)
    if systemctl is None:
        return None
    argv = [systemctl, "show", "--no-pager", unit]
    for name in properties:
        argv += ["-p", name]
    try:
        completed = _run(argv, timeout)
    except ServiceError:
        return None
    return completed.stdout if completed.returncode == 0 else None


def _run(argv, timeout):
    env = dict(os.environ, LANG="C", LC_ALL="C")
    try:
        completed = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ServiceError("%s did not finish within %d s" % (" ".join(argv), timeout)) from None
    except OSError as exc:
        raise ServiceError("cannot run %s: %s" % (argv[0], exc.strerror or exc)) from None
    return completed


def reset_start_limit(units, timeout=120):
    """``systemctl reset-failed`` for ``units`` before a deliberate start.

    Debian's docker.service allows 3 starts in 60 s (``StartLimitBurst=3``,
    ``StartLimitIntervalSec=60``): a move or a roll-back soon after other restarts (the
    install, a configuration change, a refused move) would find the engine "Start request
    repeated too quickly" and unable to start. reset-failed sets that counter to zero (and
    clears a failed state). Its own failure is not an error: the start says what went wrong."""
    try:
        _run(["systemctl", "reset-failed"] + list(units), timeout)
    except ServiceError:
        pass


def run_checked(argv, timeout):
    """Run ``argv`` (``LANG=C``); its standard output, or ServiceError naming the command and
    its last line of output when it fails."""
    completed = _run(argv, timeout)
    if completed.returncode != 0:
        output = (completed.stderr or completed.stdout).strip().splitlines()
        raise ServiceError(
            "%s failed with status %d: %s"
            % (" ".join(argv), completed.returncode, output[-1] if output else "no output")
        )
    return completed.stdout


class EngineService:
    """The engine's service on this host, stopped and started as one unit."""

    def __init__(self, manager, init_script=DEFAULT_INIT_SCRIPT, timeout=120):
        self.manager = manager
        self.init_script = init_script
        self.timeout = timeout

    def describe(self):
        if self.manager == "systemd":
            return "systemctl stop/start %s" % " ".join(SYSTEMD_UNITS)
        return "%s stop/start" % self.init_script

    def _call(self, action):
        if self.manager == "systemd":
            units = SYSTEMD_UNITS if action == "stop" else SYSTEMD_UNITS[::-1]
            if action == "start":
                reset_start_limit(units, self.timeout)
            argv = ["systemctl", action] + list(units)
        else:
            argv = [self.init_script, action]
        run_checked(argv, self.timeout)

    def stop(self):
        self._call("stop")

    def start(self):
        self._call("start")


def wait_for_engine(client, timeout=60, interval=0.2):
    """Poll /info until the engine answers; return the answer or raise ServiceError."""
    deadline = time.monotonic() + timeout
    problem = None
    while time.monotonic() < deadline:
        try:
            return client.info()
        except EngineUnavailable as exc:
            problem = str(exc)
        time.sleep(interval)
    raise ServiceError("the engine did not answer within %d s: %s" % (timeout, problem))


def wait_for_engine_gone(client, timeout=60, interval=0.2):
    """Poll until the engine no longer answers; raise ServiceError if it still does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.info()
        except EngineUnavailable:
            return
        time.sleep(interval)
    raise ServiceError("the engine still answers %d s after it was stopped" % timeout)
