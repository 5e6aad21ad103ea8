"""Run host commands for the harness: argument lists, C locale, output captured."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

DEFAULT_TIMEOUT = 120.0


class CommandError(RuntimeError):
    """A command exited non-zero; the message carries the command line and its output."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        output = "\n".join(part.strip() for part in (stdout, stderr) if part.strip())
        super().__init__(
            "%s exited with status %d%s"
            % (" ".join(self.argv), returncode, (":\n" + output) if output else "")
        )


def c_locale_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment with LANG=C, so that parsed output is untranslated."""
    env = dict(os.environ)
    env.pop("LANGUAGE", None)
    env.update(LANG="C", LC_ALL="C")
    if extra:
        env.update(extra)
    return env


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell) and return the completed process with text output.

    Raises CommandError when ``check`` is true and the command exits non-zero.
    """
    argv = [os.fspath(arg) for arg in argv]
    completed = subprocess.run(
        argv,
        input=input,
        capture_output=True,
        text=True,
        env=c_locale_env(env),
        timeout=timeout,
        check=False,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and completed.returncode != 0:
        raise CommandError(argv, completed.returncode, completed.stdout, completed.stderr)
    return completed


def kernel_messages(matching: str, limit: int = 5) -> list[str]:
    """The last ``limit`` kernel log lines that contain ``matching`` (empty when unreadable).

    The kernel says why a mount failed (for example "quota support not available in this
    kernel") only there; mount(8) just prints "wrong fs type, bad option, bad superblock".
    """
    completed = run(["dmesg"], check=False, timeout=10)
    if completed.returncode != 0:
        return []
    lines = [line for line in completed.stdout.splitlines() if matching in line]
    return lines[-limit:]
