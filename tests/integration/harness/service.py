"""A private dockerd managed the way a host without systemd manages Docker: through an init
script (start, stop, status) that reads its data-root from its own daemon.json.

Modules that stop and start the engine (data_root) drive it through that script, exactly as
they drive /etc/init.d/docker; the test reads the daemon's state over its socket.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from typing import Any

from .commands import run
from .dockerd import (
    DOCKER_CLI,
    DOCKERD,
    RUN_PARENT,
    SYSTEM_CONTAINERD_SOCKET,
    EngineAPIError,
    engine_api,
    processes_naming,
)
from .mounts import mounts_at_or_below, unmount_tree

_SCRIPT = """#!/bin/sh
# Init script of one private dockerd of the tests: start, stop, status.
RUN={run_dir}
PIDFILE="$RUN/docker.pid"
running() {{ [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }}
case "$1" in
start)
    running && exit 0
    # A host whose start command also passes the storage driver for one root (as a stray
    # drop-in would): dockerd refuses to start there, as for any directive given twice.
    extra_root=""
    if [ -f "$RUN/refuse-root" ] &&
        grep -qF "\\"data-root\\": \\"$(cat "$RUN/refuse-root")\\"" "$RUN/daemon.json"; then
        extra_root="--storage-driver=overlay2"
    fi
    setsid unshare --net -- {dockerd} --config-file="$RUN/daemon.json" --exec-root="$RUN/exec" \\
        --pidfile="$PIDFILE" --host="unix://$RUN/docker.sock" --bridge=none --iptables=false \\
        {extra} $extra_root </dev/null >>"$RUN/dockerd.log" 2>&1 &
    exit 0
    ;;
stop)
    running || exit 0
    pid="$(cat "$PIDFILE")"
    kill -TERM "$pid"
    tries=0
    while kill -0 "$pid" 2>/dev/null; do
        tries=$((tries + 1))
        [ "$tries" -eq 600 ] && kill -KILL "$pid"
        sleep 0.05
    done
    exit 0
    ;;
status)
    running
    ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
"""


class ServiceDockerd:
    """A dockerd behind an init script. ``config`` is its daemon.json as a dict."""

    def __init__(self, data_root: str, config: dict[str, Any] | None = None):
        self.run_dir = tempfile.mkdtemp(prefix="dockerhost-svc-", dir=RUN_PARENT)
        self.socket = os.path.join(self.run_dir, "docker.sock")
        self.docker_host = "unix://" + self.socket
        self.config_file = os.path.join(self.run_dir, "daemon.json")
        self.init_script = os.path.join(self.run_dir, "init")
        self.log_path = os.path.join(self.run_dir, "dockerd.log")
        self.data_roots = {os.path.realpath(data_root)}
        settings = {
            "data-root": os.path.realpath(data_root),
            "storage-driver": "overlay2",
            "deprecated-key-path": os.path.join(self.run_dir, "key.json"),
            # busybox's sh as PID 1 ignores SIGTERM: do not wait 15 s for each container.
            "shutdown-timeout": 1,
        }
        settings.update(config or {})
        with open(self.config_file, "w", encoding="utf-8") as handle:
            json.dump(settings, handle, indent=2)
        extra = ""
        if os.path.exists(SYSTEM_CONTAINERD_SOCKET):
            namespace = os.path.basename(self.run_dir)
            extra = "--containerd-namespace=%s --containerd-plugins-namespace=%s-plugins" % (
                namespace,
                namespace,
            )
        with open(self.init_script, "w", encoding="utf-8") as handle:
            handle.write(_SCRIPT.format(run_dir=self.run_dir, dockerd=DOCKERD, extra=extra))
        os.chmod(self.init_script, 0o755)

    def refuse_to_start_on(self, data_root: str) -> None:
        """From now on, dockerd refuses to start when daemon.json names ``data_root``."""
        with open(os.path.join(self.run_dir, "refuse-root"), "w", encoding="utf-8") as handle:
            handle.write(data_root)

    def service(self, action: str) -> None:
        run([self.init_script, action])

    def start(self, timeout: float = 30.0) -> None:
        self.service("start")
        self.wait_until_up(timeout)

    def wait_until_up(self, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.info(timeout=2.0)
            except (OSError, EngineAPIError):
                if time.monotonic() > deadline:
                    raise AssertionError(
                        "dockerd behind %s did not answer within %.0f s; log ends:\n%s"
                        % (self.init_script, timeout, self.log_tail())
                    ) from None
                time.sleep(0.05)

    def answers(self) -> bool:
        try:
            self.info(timeout=2.0)
        except (OSError, EngineAPIError):
            return False
        return True

    def info(self, timeout: float = 30.0) -> dict[str, Any]:
        return engine_api(self.socket, "GET", "/info", timeout=timeout)

    def settings(self) -> dict[str, Any]:
        with open(self.config_file, encoding="utf-8") as handle:
            return json.load(handle)

    def docker(self, *args: str, check: bool = True, timeout: float = 120.0):
        cli = DOCKER_CLI if os.access(DOCKER_CLI, os.X_OK) else shutil.which("docker") or "docker"
        return run([cli, "--host=" + self.docker_host, *args], check=check, timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def destroy(self, extra_roots: tuple[str, ...] = ()) -> None:
        """Stop the daemon and everything it started; unmount what it left; remove the run
        directory. Extra data-roots (a relocation target) are cleaned of mounts too."""
        try:
            self.service("stop")
        except Exception:
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in processes_naming(self.run_dir):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        unmount_tree(os.path.join(self.run_dir, "exec"))
        for root in self.data_roots | {os.path.realpath(r) for r in extra_roots}:
            if os.path.exists(root):
                unmount_tree(root)
        if not mounts_at_or_below(self.run_dir):
            shutil.rmtree(self.run_dir, ignore_errors=True)
