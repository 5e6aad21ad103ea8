"""Run a module of this collection through ansible itself, as an operator's ad-hoc call does.

The module goes through ansible's real machinery (argument validation, AnsiballZ packaging,
the local connection, the json callback), and the test reads the result an operator would see.
"""

import json
import os
import subprocess
import sys

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support")
)
from collection_path import collections_root  # noqa: E402


def _environment(environment):
    env = dict(
        os.environ,
        LANG="C.UTF-8",
        LC_ALL="C.UTF-8",
        ANSIBLE_COLLECTIONS_PATH=collections_root(),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
    )
    env.update(environment or {})
    return env


def _on_localhost(program):
    """``program`` of the venv's ansible (``ansible``, ``ansible-playbook``) with the local
    connection to localhost, on the test's own Python."""
    return [
        os.path.join(os.path.dirname(sys.executable), program),
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        "ansible_python_interpreter=%s" % sys.executable,
    ]


def _command(name, args, check, wrapper, environment):
    """argv and environment of an ad-hoc ansible call of ``dockerhost.storage.<name>``."""
    command = _on_localhost("ansible") + [
        "localhost",
        "-m",
        "dockerhost.storage.%s" % name,
        "-a",
        json.dumps(args or {}),
    ]
    if check:
        command.append("--check")
    return list(wrapper) + command, _environment(environment)


def _host_result(returncode, stdout, stderr):
    try:
        output = json.loads(stdout)
    except ValueError:
        raise AssertionError(
            "ansible printed no JSON (exit %d)\nstdout:\n%s\nstderr:\n%s"
            % (returncode, stdout, stderr)
        ) from None
    return output["plays"][0]["tasks"][0]["hosts"]["localhost"]


def run_module(name, args=None, check=False, timeout=120, wrapper=(), environment=None):
    """Run ``dockerhost.storage.<name>`` on localhost; return the host's result dict.

    The dict carries ``failed`` and ``msg`` when the module failed. ``wrapper`` is an argv
    prefix that runs ansible inside something (such as a private mount namespace).
    ``environment`` adds variables to the environment the module runs in.
    """
    command, env = _command(name, args, check, wrapper, environment)
    completed = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    return _host_result(completed.returncode, completed.stdout, completed.stderr)


class StartedModule:
    """A module run going on in the background (``start_module``); ``result()`` waits for it."""

    def __init__(self, command, env):
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )

    def running(self):
        return self.process.poll() is None

    def result(self, timeout=300):
        stdout, stderr = self.process.communicate(timeout=timeout)
        return _host_result(self.process.returncode, stdout, stderr)


def start_module(name, args=None, check=False, wrapper=(), environment=None):
    """Start ``dockerhost.storage.<name>`` as ``run_module`` does, without waiting for it."""
    return StartedModule(*_command(name, args, check, wrapper, environment))


def run_playbook(path, *args, timeout=300, must_pass=True):
    """Run the playbook at ``path`` (or a collection playbook's name) against localhost, as
    run_module runs a module, with more ``args`` for ansible-playbook (``-e``, ``--check``);
    return the json callback's answer (``plays``, ``stats``). AssertionError when the run fails,
    unless ``must_pass`` is false."""
    completed = subprocess.run(
        _on_localhost("ansible-playbook") + [str(path), *args],
        capture_output=True,
        text=True,
        env=_environment(None),
        timeout=timeout,
        check=False,
    )
    if must_pass and completed.returncode != 0:
        raise AssertionError(
            "ansible-playbook %s failed (exit %d)\nstdout:\n%s\nstderr:\n%s"
            % (path, completed.returncode, completed.stdout[-3000:], completed.stderr[-2000:])
        )
    return json.loads(completed.stdout)
