"""A racing process for tests: the moment a file is opened, rename another file over its name.

    python swap_on_open.py DIRECTORY NAME REPLACEMENT

Watches DIRECTORY with inotify and prints ``ready``; on the first open of DIRECTORY/NAME by
any process, renames REPLACEMENT (in the same directory) over it, prints ``swapped`` and
exits. A reader that checks a file by one open and uses it by another then gets the
replacement the second time. ``SwapOnOpen`` runs it from a test.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import subprocess
import sys

IN_OPEN = 0x00000020
IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")


def _watch(directory):
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = libc.inotify_init1(IN_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    if libc.inotify_add_watch(fd, os.fsencode(directory), IN_OPEN) < 0:
        raise OSError(ctypes.get_errno(), "inotify_add_watch %s" % directory)
    return fd


def _opened_names(fd):
    """The names of the files opened in the watched directory, as the events arrive."""
    while True:
        data = os.read(fd, 65536)
        offset = 0
        while offset < len(data):
            _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
            offset += _EVENT.size + length
            if mask & IN_OPEN:
                yield os.fsdecode(name)


def main(directory, name, replacement):
    fd = _watch(directory)
    print("ready", flush=True)
    for opened in _opened_names(fd):
        if opened == name:
            os.rename(replacement, os.path.join(directory, name))
            print("swapped", flush=True)
            return 0
    return 1


class SwapOnOpen:
    """``swap_on_open.py`` running in the background; ``swapped()`` stops it and says whether it
    swapped the file."""

    def __init__(self, directory, name, replacement):
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), directory, name, replacement],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, LANG="C"),
        )
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            self.process.wait()
            raise RuntimeError("the racing process did not start watching %s" % directory)

    def swapped(self):
        if self.process.poll() is None:
            self.process.kill()
        out = self.process.communicate()[0]
        return "swapped" in out.split()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
