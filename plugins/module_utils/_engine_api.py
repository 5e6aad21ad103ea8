# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal Docker Engine API client over the unix socket, standard library only.

Managed hosts need neither the docker CLI nor the docker SDK. This file touches the live
system (a socket and, for the version fallback, the dockerd binary).

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import subprocess
from urllib.parse import quote

from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DEFAULT_SEARCH_PATH = (
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
)


class EngineUnavailable(StorageError):
    """The engine did not answer; the message says why in words an operator can act on."""


def unix_http_connection(socket_path, timeout):
    """An HTTP connection (not yet connected) to the Engine API on the unix socket
    ``socket_path``."""
    return _unix_http_connection_class()(socket_path, timeout)


@functools.lru_cache(maxsize=None)
def _unix_http_connection_class():
    # Imported on first use: http.client and the email package it loads take about 50 ms of a
    # module run on a small host, which a host without an engine socket never needs (the
    # audit of a host without Docker).
    import http.client

    class UnixHTTPConnection(http.client.HTTPConnection):
        def __init__(self, socket_path, timeout):
            super().__init__("localhost", timeout=timeout)
            self._socket_path = socket_path

        def connect(self):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self._socket_path)
            except OSError:
                sock.close()
                raise
            self.sock = sock

    return UnixHTTPConnection


def socket_path_from_docker_host(docker_host):
    """``unix:///var/run/docker.sock`` -> ``/var/run/docker.sock``; ValueError for other schemes."""
    if docker_host.startswith("unix://"):
        path = docker_host[len("unix://") :]
        if path.startswith("/"):
            return path
    raise ValueError(
        "docker_host must be a unix socket such as unix:///var/run/docker.sock, got %r"
        % docker_host
    )


class EngineError(EngineUnavailable):
    """The engine answered, with an error status; ``engine_message`` is the engine's own."""

    def __init__(self, message, engine_message=None):
        super().__init__(message)
        self.engine_message = engine_message


class EngineNotFound(EngineError):
    """The engine answered 404 for an object (a container or an image)."""


def _error_message(raw):
    """The ``message`` of an Engine API error body, or the body itself, shortened."""
    try:
        decoded = json.loads(raw.decode("utf-8"))
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
        return decoded["message"].strip()
    return raw.decode("utf-8", "replace").strip()[:200]


class EngineClient:
    """Requests against the Engine API on a unix socket. Every call shares one error mapping,
    and a timeout names the engine that stopped answering instead of a bare "timed out"."""

    def __init__(self, docker_host=DEFAULT_DOCKER_HOST, timeout=10):
        self.docker_host = docker_host
        self.socket_path = socket_path_from_docker_host(docker_host)
        self.timeout = timeout

    def get(self, path):
        """GET ``path``; the decoded JSON answer. EngineUnavailable when it is anything else."""
        return self.call("GET", path)

    def call(self, method, path, body=None, ok_statuses=(200,)):
        """Send one request; return the decoded JSON answer (None for an empty body).

        Raises EngineNotFound on 404, EngineError for another status not in ``ok_statuses``
        and EngineUnavailable, naming the socket, when the engine does not answer.
        """
        try:
            os.stat(self.socket_path)
        except FileNotFoundError:
            raise EngineUnavailable("no Docker engine socket at %s" % self.socket_path) from None
        except OSError:
            pass  # connecting says what is wrong
        import http.client  # see _unix_http_connection_class

        connection = unix_http_connection(self.socket_path, self.timeout)
        headers = {"Host": "docker"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except FileNotFoundError:
            raise EngineUnavailable("no Docker engine socket at %s" % self.socket_path) from None
        except ConnectionRefusedError:
            raise EngineUnavailable(
                "nothing listens on %s (is dockerd running?)" % self.socket_path
            ) from None
        except PermissionError:
            raise EngineUnavailable(
                "permission denied on %s (run as root)" % self.socket_path
            ) from None
        except socket.timeout:
            raise EngineUnavailable(
                "the engine on %s did not answer %s %s within %s s (is dockerd hung?)"
                % (self.socket_path, method, path, self.timeout)
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise EngineUnavailable(
                "Engine API on %s failed: %s" % (self.socket_path, exc)
            ) from None
        finally:
            connection.close()
        if response.status not in ok_statuses:
            error = EngineNotFound if response.status == 404 else EngineError
            raise error(
                "Engine API %s %s on %s answered HTTP %d: %s"
                % (method, path, self.socket_path, response.status, _error_message(raw)),
                _error_message(raw),
            )
        if not raw.strip():
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError:
            raise EngineUnavailable(
                "Engine API %s on %s did not answer JSON" % (path, self.socket_path)
            ) from None

    def version(self):
        return self.get("/version")

    def info(self):
        return self.get("/info")


def parse_dockerd_version_output(text):
    """``Docker version 20.10.24+dfsg1, build 5d6db84`` -> ``20.10.24+dfsg1``; None if absent."""
    match = re.search(r"version\s+v?([0-9][0-9A-Za-z.+~-]*)", text or "")
    return match.group(1).rstrip(",") if match else None


def find_executable(name, search_path=DEFAULT_SEARCH_PATH):
    for directory in search_path:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def dockerd_binary_version(search_path=DEFAULT_SEARCH_PATH):
    """Return ``(version, binary_path, problem)`` from ``dockerd --version``."""
    binary = find_executable("dockerd", search_path)
    if binary is None:
        return None, None, "dockerd is not installed (not found in %s)" % ":".join(search_path)
    env = dict(os.environ, LANG="C", LC_ALL="C")
    try:
        completed = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=20, env=env, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, binary, "%s --version failed: %s" % (binary, exc)
    version = parse_dockerd_version_output(completed.stdout + completed.stderr)
    if version is None:
        return None, binary, "%s --version printed no version" % binary
    return version, binary, None


class ContainerEngineClient(EngineClient):
    """EngineClient plus the container calls: list, inspect, create, start, remove."""

    def containers(self):
        """GET /containers/json?all=1: every container, running or not (a list of dicts)."""
        answer = self.call("GET", "/containers/json?all=1")
        if not isinstance(answer, list):
            raise EngineUnavailable(
                "the Engine API on %s answered /containers/json with something other than a "
                "list" % self.socket_path
            )
        return answer

    def inspect_container(self, container_id):
        """GET /containers/{id}/json; EngineNotFound when it has gone meanwhile."""
        answer = self.call("GET", "/containers/%s/json" % quote(container_id, safe=""))
        if not isinstance(answer, dict):
            raise EngineUnavailable(
                "the Engine API on %s answered the inspection of %s with something other than "
                "a JSON object" % (self.socket_path, container_id)
            )
        return answer

    def images(self):
        """GET /images/json: the images the engine lists (a list of dicts)."""
        answer = self.call("GET", "/images/json")
        if not isinstance(answer, list):
            raise EngineUnavailable(
                "the Engine API on %s answered /images/json with something other than a list"
                % self.socket_path
            )
        return answer

    def inspect_image(self, image):
        """GET /images/{name}/json; EngineNotFound when the image is not present."""
        return self.call("GET", "/images/%s/json" % quote(image, safe=""))

    def create_container(self, name, config):
        """POST /containers/create?name=...; return the new container's id."""
        answer = self.call(
            "POST",
            "/containers/create?name=%s" % quote(name, safe=""),
            body=config,
            ok_statuses=(201,),
        )
        return answer["Id"]

    def start_container(self, container_id):
        """POST /containers/{id}/start."""
        self.call(
            "POST",
            "/containers/%s/start" % quote(container_id, safe=""),
            ok_statuses=(204, 304),
        )

    def remove_container(self, container_id):
        """DELETE /containers/{id}?force=1&v=1: stop it if needed, remove it and its volumes."""
        self.call(
            "DELETE",
            "/containers/%s?force=1&v=1" % quote(container_id, safe=""),
            ok_statuses=(204,),
        )
