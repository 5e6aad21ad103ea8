"""A process that rewrites files right after someone reads them, as a database in a volume
overwrites its pages in place: same size, new bytes, in the same timestamp tick as the read.

    python racing_writer.py DIRECTORY

Every regular file in DIRECTORY is rewritten over and over (so its ctime is always "now")
until another process reads it (inotify IN_CLOSE_NOWRITE); then it is rewritten once more, at
once, and never touched again. Prints "ready" when it watches, and on SIGTERM or once every
file was read, one line per file that got its last write: "final <name>". Exits 0.
"""

import ctypes
import ctypes.util
import os
import select
import signal
import struct
import sys

IN_CLOSE_NOWRITE = 0x00000010
IN_NONBLOCK = 0o4000
EVENT = struct.Struct("iIII")
WIDTH = 64


def content(name, label, counter):
    text = "%s %s %d" % (name, label, counter)
    return (text + " " * (WIDTH - 1 - len(text)) + "\n").encode()


def rewrite(path, data):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


def main(directory):
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    inotify = libc.inotify_init1(IN_NONBLOCK)
    if inotify < 0 or libc.inotify_add_watch(inotify, directory.encode(), IN_CLOSE_NOWRITE) < 0:
        raise OSError(ctypes.get_errno(), "inotify on %s" % directory)
    pending = sorted(os.listdir(directory))
    final = []
    stop = []
    signal.signal(signal.SIGTERM, lambda *args: stop.append(True))
    print("ready", flush=True)
    counter = 0
    while pending and not stop:
        counter += 1
        try:
            for name in pending:
                rewrite(os.path.join(directory, name), content(name, "pre", counter))
        except FileNotFoundError:
            break  # the directory was moved away: nothing more will read these
        ready, _unused, _unused = select.select([inotify], [], [], 0)
        if not ready:
            continue
        data = os.read(inotify, 65536)
        offset = 0
        while offset < len(data):
            _wd, _mask, _cookie, length = EVENT.unpack_from(data, offset)
            name = data[offset + EVENT.size : offset + EVENT.size + length].rstrip(b"\0").decode()
            offset += EVENT.size + length
            if name in pending:
                rewrite(os.path.join(directory, name), content(name, "fin", counter))
                pending.remove(name)
                final.append(name)
    for name in final:
        print("final %s" % name, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
