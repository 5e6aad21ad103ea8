"""Run a program of another root filesystem, chrooted, with some host directories bound in.

    chroot_exec.py ROOT [--bind DIR]... -- PROGRAM [ARGS...]
    chroot_exec.py --bind-over DIR TARGET -- PROGRAM [ARGS...]

Meant to run as root inside ``unshare --mount --propagation private`` (engine_root.py builds
the command): the mounts made here live in that namespace only and go with its last process.
ROOT itself is never written: the program sees it through an overlay whose upper layer is a
tmpfs of this namespace (mounted on ROOT's sibling ``.scratch``), so whatever it writes, and the
directories the bind mounts need, go when it exits. That view gets a fresh proc, the host's /sys
and /dev (recursively, so the cgroup hierarchies and /dev/pts come along), and each DIR at the
same path; then the process chroots into it and becomes PROGRAM, keeping its pid.
"""

import os
import subprocess
import sys

ENV = {"LANG": "C", "LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, env=ENV)


def _inside(root: str, path: str) -> str:
    return os.path.join(root, os.path.abspath(path).lstrip("/"))


def main(argv: list[str]) -> None:
    if argv[:1] == ["--bind-over"] and len(argv) > 4 and argv[3] == "--":
        # No chroot: DIR mounted over TARGET, then PROGRAM, as it is on the host.
        _mount("--bind", argv[1], argv[2])
        os.execvpe(argv[4], argv[4:], os.environ)
    if "--" not in argv or len(argv) < 3:
        sys.exit("usage: chroot_exec.py ROOT [--bind DIR]... -- PROGRAM [ARGS...]")
    split = argv.index("--")
    root, options, program = argv[0], argv[1:split], argv[split + 1 :]
    binds = []
    while options:
        if options[0] != "--bind" or len(options) < 2:
            sys.exit("chroot_exec.py: unknown option %r" % options[0])
        binds.append(options[1])
        options = options[2:]
    scratch = os.path.join(os.path.dirname(os.path.abspath(root)), ".scratch")
    os.makedirs(scratch, exist_ok=True)
    _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", scratch)
    view = os.path.join(scratch, "root")
    for name in ("upper", "work", "root"):
        os.mkdir(os.path.join(scratch, name))
    _mount(
        "-t",
        "overlay",
        "-o",
        "lowerdir=%s,upperdir=%s/upper,workdir=%s/work" % (root, scratch, scratch),
        "overlay",
        view,
    )
    _mount("-t", "proc", "proc", _inside(view, "/proc"))
    for path in ("/sys", "/dev", *binds):
        target = _inside(view, path)
        os.makedirs(target, exist_ok=True)
        _mount("--rbind", path, target)
    os.chroot(view)
    os.chdir("/")
    os.execve(program[0], program, {**os.environ, "PATH": ENV["PATH"]})


if __name__ == "__main__":
    main(sys.argv[1:])
