"""Private dockerd instances for tests, side by side with the host's daemon.

Each one gets its own data-root (given by the test), exec-root, pidfile, unix socket and
daemon.json (under a short directory in /run: unix socket paths must stay below 108 bytes),
runs with --bridge=none --iptables=false, and lives in its own network namespace
(``unshare --net``): a dockerd started with --bridge=none deletes the docker0 bridge of the
daemon already running, whose containers then fail to start.

dockerd bind-mounts its data-root onto itself (for mount propagation) and leaves that mount
behind when it stops in the same mount namespace; stop() takes down every mount the daemon
added under its data-root and exec-root.
"""

from __future__ import annotations

import glob
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .commands import c_locale_env, run
from .mounts import mounts_at_or_below, unmount_tree

if TYPE_CHECKING:
    from .engine_root import EngineRoot

DOCKERD = "/usr/sbin/dockerd"
# The CLI shipped with the engine under test (Debian's docker.io), rather than whichever
# docker comes first on PATH.
DOCKER_CLI = "/usr/bin/docker"
RUN_PARENT = "/run"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
# dockerd 20.10 uses a containerd listening here instead of starting its own.
SYSTEM_CONTAINERD_SOCKET = "/run/containerd/containerd.sock"

_LOGRUS_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')
# What dockerd logs last before it waits for its containerd to exit.
_LAST_WORDS = ("Daemon shutdown complete", "failed to start daemon")


class EngineAPIError(RuntimeError):
    """The Engine API answered with an error status."""

    def __init__(self, method: str, path: str, status: int, message: str):
        self.status = status
        super().__init__("%s %s: HTTP %d: %s" % (method, path, status, message))


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def engine_api(
    socket_path: str,
    method: str,
    path: str,
    body: Any = None,
    timeout: float = 30.0,
) -> Any:
    """Call the Engine API on a unix socket; return the decoded JSON (or text) answer."""
    connection = _UnixHTTPConnection(socket_path, timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        content_type = response.getheader("Content-Type", "")
    finally:
        connection.close()
    data: Any = raw.decode("utf-8", "replace")
    if "json" in content_type and raw:
        data = json.loads(raw)
    if response.status >= 400:
        message = data.get("message", data) if isinstance(data, dict) else data
        raise EngineAPIError(method, path, response.status, str(message).strip())
    return data


def refusal_from_log(text: str) -> str | None:
    """The reason dockerd gave for not starting: its last "failed to start daemon" or
    fatal line (for logrus lines, just the message), or None."""
    found = None
    for line in text.splitlines():
        if "failed to start daemon" in line or "level=fatal" in line:
            match = _LOGRUS_MSG.search(line) if "level=" in line else None
            found = match.group(1).replace('\\"', '"') if match else line.strip()
    return found


def processes_naming(text: str) -> list[int]:
    """PIDs of the processes whose command line contains ``text``."""
    marker = text.encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                if marker in handle.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


class PrivateDockerd:
    """One dockerd of the test's own. See start_dockerd in conftest for the usual entry."""

    def __init__(
        self,
        data_root: str | os.PathLike[str],
        storage_driver: str | None = None,
        extra_args: Sequence[str] = (),
        config_file: str | os.PathLike[str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        engine: EngineRoot | None = None,
        binds: Sequence[str] = (),
    ):
        self.data_root = os.path.realpath(data_root)
        # None: the host's dockerd; otherwise one run chrooted in another release's root.
        self.engine = engine
        self.storage_driver = storage_driver
        self.run_dir = tempfile.mkdtemp(prefix="dockerhost-test-", dir=RUN_PARENT)
        self.exec_root = os.path.join(self.run_dir, "exec")
        self.socket = os.path.join(self.run_dir, "docker.sock")
        self.pidfile = os.path.join(self.run_dir, "docker.pid")
        log_name = os.path.basename(self.run_dir) + ".log"
        self.log_path = os.path.join(os.fspath(log_dir or self.run_dir), log_name)
        if config_file is None:
            # Never /etc/docker/daemon.json: the host's settings must not leak in, and a key
            # set there and as a flag here would make dockerd refuse to start. 20.10 derives
            # its daemon ID from a trust key, /etc/docker/key.json unless this file names
            # another (there is no flag for it): a key of its own keeps /etc/docker untouched
            # and the IDs distinct. A test's own config_file is used exactly as given.
            # Engines from 23.0 on have no trust key, and refuse the setting.
            config_file = os.path.join(self.run_dir, "daemon.json")
            settings = {}
            if engine is None:
                settings["deprecated-key-path"] = os.path.join(self.run_dir, "key.json")
            with open(config_file, "w", encoding="utf-8") as handle:
                json.dump(settings, handle)
        self.config_file = os.fspath(config_file)
        dockerd = [
            DOCKERD,
            "--data-root=" + self.data_root,
            "--exec-root=" + self.exec_root,
            "--pidfile=" + self.pidfile,
            "--host=unix://" + self.socket,
            "--config-file=" + self.config_file,
            "--bridge=none",
            "--iptables=false",
        ]
        if engine is None and os.path.exists(SYSTEM_CONTAINERD_SOCKET):
            # A system containerd would be shared by every dockerd: keep each in its own
            # namespace so that they cannot see each other's containers. (A chrooted engine
            # does not see it, and starts a containerd of its own release.)
            namespace = os.path.basename(self.run_dir)
            dockerd += [
                "--containerd-namespace=" + namespace,
                "--containerd-plugins-namespace=" + namespace + "-plugins",
            ]
        if storage_driver:
            dockerd.append("--storage-driver=" + storage_driver)
        dockerd += list(extra_args)
        if engine is None:
            self.argv = ["unshare", "--net", "--", *dockerd]
        else:
            from .engine_root import nearest_existing

            seen = [self.run_dir, nearest_existing(self.data_root), *binds]
            if not self.config_file.startswith(self.run_dir + "/"):
                seen.append(os.path.dirname(self.config_file))
            self.argv = ["unshare", "--net", "--", *engine.command(dockerd, seen)]
        self.process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.started = False
        self.refusal: str | None = None
        self.stopped = False
        self._mounts_before: frozenset[int] = frozenset()

    def __repr__(self) -> str:
        return "<PrivateDockerd %s data_root=%s %s>" % (
            self.socket,
            self.data_root,
            "started" if self.started else "not started: %s" % self.refusal,
        )

    def start(self, timeout: float = START_TIMEOUT) -> bool:
        """Start dockerd; wait until /info answers, the process exits, or ``timeout``.

        Sets ``started``, or ``refusal`` with dockerd's reason. Returns ``started``.
        """
        self._mounts_before = frozenset(e.mount_id for e in mounts_at_or_below(self.data_root))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=c_locale_env(),
                start_new_session=True,
            )
        self.pid = self.process.pid  # unshare execs dockerd: same process
        deadline = time.monotonic() + timeout
        while True:
            exited = self.process.poll() is not None
            if exited or refusal_from_log(self.log_text()):
                # A refusing dockerd has nothing left to do but wait for its containerd.
                self._wait_for_exit(STOP_TIMEOUT, log_offset=0)
                self.refusal = refusal_from_log(self.log_text()) or (
                    "dockerd exited with status %s before answering; log ends: %s"
                    % (self.process.returncode, self.log_tail(1).strip())
                )
                return False
            try:
                self.info(timeout=2.0)
            except (OSError, http.client.HTTPException, EngineAPIError):
                pass
            else:
                self.started = True
                return True
            if time.monotonic() >= deadline:
                self.refusal = "dockerd did not answer on %s within %.0f s" % (self.socket, timeout)
                self._terminate()
                return False
            time.sleep(0.05)

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        """Call this daemon's Engine API (``path`` like "/info" or "/v1.41/containers/json")."""
        return engine_api(self.socket, method, path, body=body, timeout=timeout)

    def info(self, timeout: float = 30.0) -> dict[str, Any]:
        """GET /info: Driver, DockerRootDir, DriverStatus, ..."""
        return self.api("GET", "/info", timeout=timeout)

    def docker(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 120.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this daemon; CommandError on failure when ``check``."""
        cli = DOCKER_CLI if os.access(DOCKER_CLI, os.X_OK) else shutil.which("docker") or "docker"
        argv = [cli, "--host=unix://" + self.socket, *args]
        return run(argv, check=check, timeout=timeout, input=input)

    def log_text(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the log, without containerd's gRPC chatter."""
        kept = [
            line for line in self.log_text().splitlines(keepends=True) if "module=grpc" not in line
        ]
        return "".join(kept[-lines:])

    def assert_started(self) -> None:
        """Fail the test with dockerd's refusal and log tail unless it started."""
        if not self.started:
            raise AssertionError(
                "private dockerd on %s did not start: %s\n--- %s (tail)\n%s"
                % (self.data_root, self.refusal, self.log_path, self.log_tail())
            )

    def _helper_pids(self) -> list[int]:
        # The managed containerd and its shims name paths in our run directory on their
        # command lines; so does nothing else.
        return [pid for pid in processes_naming(self.run_dir) if pid != self.pid]

    def _wait_for_exit(self, timeout: float, log_offset: int) -> bool:
        """Wait for dockerd to exit; True when it did within ``timeout``.

        dockerd checks once a second whether its containerd has gone before it exits. Once
        its log (from ``log_offset`` on) has its last line and containerd is gone, nothing is
        left for it to do, and it is killed rather than waited for.
        """
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            said_last_word = any(line in self.log_text()[log_offset:] for line in _LAST_WORDS)
            if said_last_word and not self._helper_pids():
                self.process.kill()
                self.process.wait(10)
                break
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def _terminate(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        log_offset = len(self.log_text())
        self.process.send_signal(signal.SIGTERM)
        if not self._wait_for_exit(timeout, log_offset):
            self.process.kill()
            self.process.wait(10)

    def _kill_leftovers(self) -> None:
        # After a dockerd that had to be killed: its containerd and any shims.
        pids = self._helper_pids()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 2
            while pids and time.monotonic() < deadline:
                pids = [pid for pid in pids if os.path.exists("/proc/%d" % pid)]
                time.sleep(0.02)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, SIGKILL after ``timeout``; then unmount what the daemon left under its
        data-root and exec-root and remove its run directory. Safe to call more than once."""
        if self.stopped:
            return
        self._terminate(timeout)
        self._kill_leftovers()
        unmount_tree(self.exec_root)
        unmount_tree(self.data_root, keep=self._mounts_before)
        # With userns-remap, dockerd also makes "<exec-root's parent>.<uid>.<gid>" beside it.
        for path in [self.run_dir] + glob.glob(glob.escape(self.run_dir) + ".*"):
            if not mounts_at_or_below(path):
                shutil.rmtree(path, ignore_errors=True)
        self.stopped = True

    def __enter__(self) -> PrivateDockerd:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class DockerdFactory:
    """Starts private dockerds and stops them all at the end."""

    def __init__(self, log_dir: str | os.PathLike[str] | None = None):
        self.log_dir = log_dir
        self.created: list[PrivateDockerd] = []

    def __call__(
        self,
        data_root: str | os.PathLike[str],
        storage_driver: str | None = None,
        extra_args: Sequence[str] = (),
        config_file: str | os.PathLike[str] | None = None,
        timeout: float = START_TIMEOUT,
        engine: EngineRoot | None = None,
        binds: Sequence[str] = (),
    ) -> PrivateDockerd:
        daemon = PrivateDockerd(
            data_root,
            storage_driver=storage_driver,
            extra_args=extra_args,
            config_file=config_file,
            log_dir=self.log_dir,
            engine=engine,
            binds=binds,
        )
        self.created.append(daemon)
        daemon.start(timeout=timeout)
        return daemon

    def stop_all(self) -> None:
        """Stop every daemon started here, newest first; report all failures at once."""
        failures = []
        for daemon in reversed(self.created):
            try:
                daemon.stop()
            except Exception as error:
                failures.append("%s: %s" % (daemon.socket, error))
        self.created.clear()
        if failures:
            raise RuntimeError("dockerd teardown failed:\n" + "\n".join(failures))
