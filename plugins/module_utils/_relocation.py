# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Move a Docker data-root to another filesystem as one transaction: preflight, bulk copy while
the engine runs, stop, final pass, verify, switch daemon.json, start, confirm; roll back to the
original data-root on any failure after the stop.

A journal in a directory only root may write (``JOURNAL_DIRECTORY``) records the phase, so that
a run killed at any moment can be completed by the next one: the source is never modified until
the engine runs from the verified copy, and daemon.json names the new root only once the copy
is complete and verified.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import stat
import tempfile
import threading
import time

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _containerd,
    _daemon_config,
    _daemon_json,
    _engine_service,
    _filesystem_probe,
    _mountinfo,
    _path_users,
    _tree_copy,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._atomic_file import (
    write_text_atomically,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    ContainerEngineClient,
    EngineUnavailable,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_state import (
    engine_data_root,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError
from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import (
    PSEUDO_FILESYSTEM_ROOTS,
    is_within,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._tree_manifest import (
    compare_entries,
    compare_trees_in_detail,
)

# Journals of unfinished moves, one per target; only root may write here.
JOURNAL_DIRECTORY = "/var/lib/dockerhost-storage/relocation"


class RelocationError(StorageError):
    """The relocation was refused or failed; the message says why and what state is left."""


# ---------------------------------------------------------------------------------------------
# Paths and the journal


def _journal_directory():
    return JOURNAL_DIRECTORY


def journal_path(target):
    """Where the journal of a move to ``target`` lives: in a directory only root may write,
    named for the target (its last component, for people, and a hash of the whole path)."""
    target = os.path.normpath(target)
    digest = hashlib.sha256(target.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in os.path.basename(target))
    return os.path.join(_journal_directory(), "%s-%s.json" % (name[:64] or "root", digest))


def _open_journal_directory(create):
    """A descriptor of the journal directory after checking that only root can write there;
    None when it does not exist and ``create`` is false."""
    directory = _journal_directory()
    if create:
        try:
            os.makedirs(os.path.dirname(directory), 0o755, exist_ok=True)
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RelocationError(
            "cannot open the relocation journal directory %s: %s" % (directory, exc.strerror or exc)
        ) from None
    _trust_state_file(os.fstat(fd), directory, "directory", fd)
    return fd


def _trust_state_file(st, path, kind, fd):
    """Refuse a journal, or its directory, that anyone but this user could have written."""
    problem = None
    if st.st_uid != os.geteuid():
        problem = "belongs to uid %d" % st.st_uid
    elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = "is writable by group or others (mode %04o)" % stat.S_IMODE(st.st_mode)
    elif kind == "file" and (not stat.S_ISREG(st.st_mode) or st.st_nlink != 1):
        problem = "is not a plain file"
    if problem:
        os.close(fd)
        raise RelocationError(
            "the relocation journal %s %s %s: not trusting it. Only root may write there; "
            "remove it, and check who put it there" % (kind, path, problem)
        )


def read_journal(target):
    """The journal of an earlier run for ``target``, or None. Opened without following
    symlinks, and trusted only when root owns it and nobody else may write it."""
    path = journal_path(target)
    directory_fd = _open_journal_directory(create=False)
    if directory_fd is None:
        return None
    try:
        fd = os.open(
            os.path.basename(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory_fd
        )
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RelocationError(
            "cannot open the relocation journal %s: %s; if no relocation is under way, remove it"
            % (path, exc.strerror or exc)
        ) from None
    finally:
        os.close(directory_fd)
    _trust_state_file(os.fstat(fd), path, "file", fd)
    try:
        with os.fdopen(fd, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise RelocationError(
            "cannot read the relocation journal %s: %s; if no relocation is under way, remove it"
            % (path, exc)
        ) from None
    if not isinstance(data, dict) or os.path.normpath(str(data.get("target"))) != os.path.normpath(
        target
    ):
        raise RelocationError(
            "the relocation journal %s is not one of a move to %s; remove it" % (path, target)
        )
    return data


def journal_problems(journal, source):
    """Why ``journal`` cannot be believed about a data-root now at ``source``: its source must
    be the data-root in force, or the one its previous configuration names (after a switch)."""
    recorded = journal.get("source")
    if not isinstance(recorded, str) or not os.path.isabs(recorded):
        return ["it names no absolute source"]
    previous = journal.get("previous_config")
    if journal.get("phase") in (PHASE_SWITCHING, PHASE_SWITCHED) and previous is not None:
        try:
            named = json.loads(previous).get("data-root", "/var/lib/docker")
        except (ValueError, AttributeError):
            return ["its previous configuration is not a JSON object"]
        if journal.get("method", "config") == "config" and os.path.normpath(named) != recorded:
            return [
                "its source %s is not the data-root its previous configuration names (%s)"
                % (recorded, named)
            ]
    elif journal.get("phase") == PHASE_COPYING and os.path.normpath(source) != recorded:
        return ["its source %s is not the data-root in force (%s)" % (recorded, source)]
    return []


def write_journal(target, data):
    """Write the journal atomically: a crash leaves the previous journal or this one."""
    directory_fd = _open_journal_directory(create=True)
    os.close(directory_fd)
    text = json.dumps(dict(data, target=os.path.normpath(target)), indent=2, sort_keys=True)
    write_text_atomically(journal_path(target), text + "\n", 0o600)


def remove_journal(target):
    try:
        os.unlink(journal_path(target))
    except FileNotFoundError:
        pass


def make_parents(path):
    """Create the missing parent directories of ``path``, root's and mode 0755 whatever the
    umask, as a package would make them."""
    missing = []
    parent = os.path.dirname(os.path.normpath(path))
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(missing):
        os.mkdir(directory, 0o755)
        os.chmod(directory, 0o755)


def kept_source_name(source, now=None):
    """Where the source is kept after success: ``<source>.relocated-<UTC timestamp>``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return "%s.relocated-%s" % (source.rstrip("/"), stamp)


def is_own_filesystem(path, mountinfo_path="/proc/self/mountinfo"):
    """True when another filesystem than its parent's is mounted at ``path`` (a bind mount of
    a directory onto itself does not count)."""
    mounts = _mountinfo.read_mountinfo(mountinfo_path)
    by_id = {mount.mount_id: mount for mount in mounts}
    for mount in reversed(mounts):
        if mount.mount_point == path:
            parent = by_id.get(mount.parent_id)
            return parent is None or parent.device != mount.device
    return False


def foreign_mounts(data_root, mountinfo_path="/proc/self/mountinfo"):
    """Mount points below ``data_root`` that the engine does not make for its containers
    (overlay merged directories, shm, network namespaces): other filesystems whose content a
    copy of the data-root would leave behind."""
    prefix = data_root.rstrip("/") + "/"
    found = []
    for mount in _mountinfo.read_mountinfo(mountinfo_path):
        if not mount.mount_point.startswith(prefix):
            continue
        relative = mount.mount_point[len(prefix) :]
        if mount.fstype in ("overlay", "nsfs", "proc"):
            continue
        if (
            mount.fstype == "tmpfs"
            and relative.startswith("containers/")
            and relative.endswith("/shm")
        ):
            continue
        found.append("%s (%s)" % (mount.mount_point, mount.fstype))
    return found


def release_self_bind_mount(data_root, mountinfo_path="/proc/self/mountinfo"):
    """Unmount the bind mount of ``data_root`` onto itself that dockerd leaves behind when it
    stops (it makes the data-root a mount point of its own for mount propagation); a mount
    point cannot be renamed. Other mounts are left alone. Returns True when one was removed."""
    mounts = _mountinfo.read_mountinfo(mountinfo_path)
    by_id = {mount.mount_id: mount for mount in mounts}
    released = False
    for mount in reversed(mounts):
        parent = by_id.get(mount.parent_id)
        if (
            mount.mount_point == data_root
            and parent is not None
            and parent.device == mount.device
            and mount.root.endswith(data_root[len(parent.mount_point.rstrip("/")) :])
        ):
            _filesystem_probe.unmount(data_root)
            released = True
    return released


# ---------------------------------------------------------------------------------------------
# Preflight


def nearest_existing(path):
    """``path`` or its nearest ancestor that exists; a symlink counts, even a dangling one."""
    return _mountinfo.nearest_existing_ancestor(path, exists=os.path.lexists)


def unsafe_ancestors(path):
    """Sentences naming each entry on the way to ``path`` (each of its components, ``path``
    included, as far as they exist, and the first one that does not) that a user other than
    root could replace or create, say as a symlink to /etc, between the checks and the copy:
    one in a directory that is not root's or that group or others may write, unless that
    directory is sticky and root owns the entry (as in /tmp). The walk stops at a symlink:
    call it with the resolved path too (``target_problems`` does)."""
    found = []
    parts = [part for part in os.path.normpath(path).split("/") if part]
    parent = "/"
    for part in parts:
        entry = os.path.join(parent, part)
        try:
            parent_st = os.lstat(parent)
        except FileNotFoundError:
            break
        try:
            entry_st = os.lstat(entry)
        except FileNotFoundError:
            entry_st = None
        writable = parent_st.st_uid != 0 or parent_st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        protected = parent_st.st_mode & stat.S_ISVTX and parent_st.st_uid == 0
        if writable and not (protected and entry_st is not None and entry_st.st_uid == 0):
            found.append(
                "%s %s, so someone other than root could %s %s (as a symlink to /etc, say) "
                "while the data is moved"
                % (
                    parent,
                    _who_may_write(parent_st),
                    "replace" if entry_st is not None else "create",
                    entry,
                )
            )
        if entry_st is None or not stat.S_ISDIR(entry_st.st_mode):
            break
        parent = entry
    return found


def _who_may_write(st):
    if st.st_uid != 0:
        return "belongs to uid %d" % st.st_uid
    if st.st_mode & stat.S_IWGRP and st.st_mode & stat.S_IWOTH:
        who = "group and others"
    else:
        who = "others" if st.st_mode & stat.S_IWOTH else "group"
    return "is writable by %s (mode %04o)" % (who, stat.S_IMODE(st.st_mode))


def filesystem_path(path, mounts):
    """``(device, path inside its filesystem)`` of a real absolute ``path``, through the
    mount that shows it: a bind mount shows a directory of its filesystem elsewhere."""
    mount = _mountinfo.mount_for_path(mounts, path)
    if mount is None:
        return None, path
    inside = os.path.relpath(path, mount.mount_point)
    return mount.device, os.path.normpath(os.path.join(mount.root, inside))


def bind_alias_problems(source, target, mountinfo_path="/proc/self/mountinfo"):
    """Sentences when ``target`` (or its nearest existing ancestor) is, through a bind mount,
    the same directory as one inside ``source`` or the other way round: a copy would then
    write into what it reads."""
    mounts = _mountinfo.read_mountinfo(mountinfo_path)
    device, source_path = filesystem_path(os.path.realpath(source), mounts)
    nearest = nearest_existing(target)
    target_device, target_path = filesystem_path(os.path.realpath(nearest), mounts)
    # The part still to be created lies where the nearest existing ancestor does.
    target_path = os.path.normpath(os.path.join(target_path, os.path.relpath(target, nearest)))
    if device is None or device != target_device:
        return []
    if is_within(target_path, source_path) or is_within(source_path, target_path):
        return [
            "path %s is, through a bind mount, the directory %s of the filesystem that holds "
            "the current data-root %s (there %s): the copy would write into what it reads"
            % (target, target_path, source, source_path)
        ]
    return []


def _unsafe_target_problems(target, option):
    """Sentences for every parent of ``target``, as given and as the kernel resolves it, that
    someone other than root could write."""
    # The path as given and as the kernel resolves it: a symlink on the way leads to other
    # directories, whose owners could swap what the copy writes into.
    reasons = unsafe_ancestors(target)
    reasons += [
        reason for reason in unsafe_ancestors(os.path.realpath(target)) if reason not in reasons
    ]
    return [
        "%s %s is not safe: %s; choose a target whose every parent directory only root can "
        "write (chown root, chmod go-w)" % (option, target, reason)
        for reason in reasons
    ]


def _existing_target_problems(source, target, journal, force, option):
    """Sentences when what is already at ``target`` cannot receive the copy: a symlink, a file,
    or a directory with entries that neither a resumed run nor ``force`` accounts for."""
    problems = []
    if os.path.islink(target):
        problems.append(
            "%s %s is a symlink (to %s); give the real directory"
            % (option, target, os.readlink(target))
        )
    elif os.path.lexists(target):
        if not os.path.isdir(target):
            problems.append("%s %s exists and is not a directory" % (option, target))
        else:
            resuming = journal is not None and journal.get("source") == source
            entries = os.listdir(target)
            if entries and not resuming and not force:
                problems.append(
                    "%s %s is not empty (%d entries, such as %s); empty it, or set force: true "
                    "to copy over it" % (option, target, len(entries), sorted(entries)[0])
                )
    return problems


def _same_filesystem_problems(source, target, allow_same_filesystem, option, source_name):
    """A sentence when ``target`` would land on the filesystem that holds ``source`` (unless
    ``allow_same_filesystem``), or when either cannot be examined."""
    problems = []
    try:
        source_device = os.stat(source).st_dev
        target_device = os.stat(nearest_existing(target)).st_dev
    except OSError as exc:
        problems.append("cannot stat %s: %s" % (exc.filename, exc.strerror))
    else:
        if source_device == target_device and not allow_same_filesystem:
            problems.append(
                "%s %s is on the same filesystem as %s %s; moving there frees nothing (set "
                "allow_same_filesystem: true to do it anyway)"
                % (option, target, source_name, source)
            )
    return problems


def target_problems(
    source,
    target,
    journal,
    force,
    allow_same_filesystem,
    option="path",
    source_name="the current data-root",
):
    """Reasons, as sentences, why ``target`` cannot receive the data-root at ``source``.

    ``option`` names the target in the sentences, ``source_name`` the source (containerd's
    root is checked by the same rules)."""
    problems = _unsafe_target_problems(target, option)
    if any(is_within(target, root) for root in PSEUDO_FILESYSTEM_ROOTS if root != "/"):
        problems.append(
            "%s %s is on a pseudo or runtime filesystem (%s); choose a directory on a disk"
            % (option, target, ", ".join(PSEUDO_FILESYSTEM_ROOTS))
        )
    # Compared as the kernel resolves them: a parent that is a symlink into the source counts.
    real_target, real_source = os.path.realpath(target), os.path.realpath(source)
    if is_within(target, source) or is_within(real_target, real_source):
        problems.append("%s %s is inside %s %s" % (option, target, source_name, source))
    if is_within(source, target) or is_within(real_source, real_target):
        problems.append("%s %s is inside %s %s" % (source_name, source, option, target))
    problems += _existing_target_problems(source, target, journal, force, option)
    if not problems:
        problems.extend(bind_alias_problems(source, target))
    if not problems:
        problems.extend(
            _same_filesystem_problems(source, target, allow_same_filesystem, option, source_name)
        )
    return problems


def metadata_problems(directory):
    """Reasons why the filesystem of ``directory`` cannot hold an overlay2 store: trusted.* and
    security.* xattrs (opaque and redirect flags, file capabilities) and 0/0 character devices
    (whiteouts). Tried for real in a temporary directory that is removed again."""
    problems = []
    try:
        workspace = tempfile.mkdtemp(prefix=".dockerhost-storage-check-", dir=directory)
    except OSError as exc:
        return ["cannot create a directory in %s: %s" % (directory, exc.strerror or exc)]
    try:
        probe = os.path.join(workspace, "file")
        with open(probe, "wb"):
            pass
        for name, value in (
            ("trusted.overlay.opaque", b"y"),
            ("security.capability", bytes.fromhex("0100000200200000000000000000000000000000")),
        ):
            try:
                os.setxattr(workspace if name.startswith("trusted") else probe, name, value)
            except OSError as exc:
                problems.append(
                    "the filesystem of %s does not keep %s extended attributes: %s"
                    % (directory, name.split(".", maxsplit=1)[0] + ".*", exc.strerror or exc)
                )
        try:
            os.mknod(os.path.join(workspace, "whiteout"), stat.S_IFCHR | 0o600, os.makedev(0, 0))
        except OSError as exc:
            problems.append(
                "the filesystem of %s cannot hold device nodes (overlay whiteouts): %s%s"
                % (
                    directory,
                    exc.strerror or exc,
                    " (mounted nodev?)" if exc.errno == errno.EPERM else "",
                )
            )
    finally:
        for name in ("file", "whiteout"):
            try:
                os.unlink(os.path.join(workspace, name))
            except OSError:
                pass
        os.rmdir(workspace)
    return problems


# ---------------------------------------------------------------------------------------------
# What the engine holds, to prove nothing was lost


def engine_inventory(client):
    """IDs of images, containers (with whether they run) and volume names, over the Engine API."""
    images = client.call("GET", "/images/json?all=1") or []
    containers = client.call("GET", "/containers/json?all=1") or []
    volumes = (client.call("GET", "/volumes") or {}).get("Volumes") or []
    return {
        "images": sorted(image["Id"] for image in images),
        # By tag and content digest: an image that came back under another ID, or lost a tag,
        # is missing as well.
        "tags": sorted(
            "%s@%s" % (tag, image["Id"])
            for image in images
            for tag in image.get("RepoTags") or ()
            if tag != "<none>:<none>"
        ),
        "containers": sorted(container["Id"] for container in containers),
        "running": sorted(c["Id"] for c in containers if c.get("State") == "running"),
        "volumes": sorted(volume["Name"] for volume in volumes),
    }


def _short(key, name):
    """An inventory entry as a message shows it: a tag without its image ID, IDs cut short."""
    return name.rpartition("@")[0] if key == "tags" else name[:12]


def inventory_problems(before, after):
    """Sentences naming what the engine lost between two inventories."""
    problems = []
    for key, label in (
        ("images", "images"),
        ("tags", "image tags"),
        ("containers", "containers"),
        ("volumes", "volumes"),
        ("running", "running containers"),
    ):
        # Inventories recorded in journals of older versions have no tags.
        missing = sorted(set(before.get(key, ())) - set(after.get(key, ())))
        if missing:
            problems.append(
                "%d %s are missing after the move: %s"
                % (len(missing), label, ", ".join(_short(key, name) for name in missing[:5]))
            )
    return problems


# ---------------------------------------------------------------------------------------------
# The transaction

PHASE_COPYING = "copying"  # daemon.json names the source; the target is partial or unverified
PHASE_SWITCHING = "switching"  # the copy is verified; daemon.json (or fstab) may name either
PHASE_SWITCHED = "switched"  # daemon.json names the target, a verified copy of the source


class Relocation:
    """One move of the data-root from ``source`` to ``target``.

    The collaborators are handed in, each the real thing in the module:
    ``copy`` (a ``_tree_copy.TreeCopy`` from source to target, with ``run()``, ``changed``,
    ``kept_existing`` and ``forget(paths)``),
    ``compare(source, target, hash_paths)`` (``_tree_manifest.compare_trees_in_detail``), and
    ``compare_in_detail`` and ``compare_entries`` from the same file,
    ``config`` (``switch(target, driver)`` writes daemon.json and returns its previous text or
    None when there was no file; ``restore(previous)`` puts it back),
    ``service`` (``stop()``, ``start()``),
    ``engine()`` (an Engine API client when the engine answers, else None),
    ``wait_for_engine()`` (a client once the engine answers; raises when it does not),
    ``wait_for_engine_gone(client)``, ``start_container(client, id)``,
    ``checkpoint(name)`` (called between steps; the fault-injection tests kill the process
    there), and optionally ``target_users()`` (sentences naming the mounts and processes
    that use the target, ``_path_users.users_of``), asked before the copy, once the engine
    has stopped, and right before the switch, and ``sync(path)`` (writes the filesystem of
    ``path`` to disk, ``sync_filesystem``): after the bulk copy, and before the switch.

    ``containerd`` (optional, a ``ContainerdRoot``): the host containerd's root, which holds
    the images when the engine uses the containerd image store with the host's containerd. It is
    copied, checked and switched with the data-root: stopped after the engine, its root written
    into its configuration before daemon.json, started before the engine, and put back with it
    on any failure.
    """

    def __init__(
        self,
        source,
        target,
        driver,
        collaborators,
        verify_full=False,
        remove_source=False,
        pin_driver=True,
    ):
        self.source = source
        self.target = target
        self.driver = driver
        for name in (
            "copy",
            "compare",
            "compare_in_detail",
            "compare_entries",
            "config",
            "service",
            "engine",
            "wait_for_engine",
            "wait_for_engine_gone",
            "start_container",
            "checkpoint",
        ):
            setattr(self, name, collaborators[name])
        self.containerd = collaborators.get("containerd")
        self._previous_containerd_config = None
        # Whether containerd ran on its old root before the move (then it runs again after).
        self._containerd_was_running = False
        self.target_users = collaborators.get("target_users") or (lambda: [])
        self.sync = collaborators.get("sync") or (lambda path: None)
        self.verify_full = verify_full
        self.remove_source = remove_source
        # False when a dockerd flag sets the storage driver: pinning it in daemon.json as well
        # would make dockerd refuse to start (a directive given twice).
        self.pin_driver = pin_driver
        # The path the engine reports as its data-root once the move is done: the target when
        # daemon.json is switched, the old path when the target is bind-mounted over it.
        self.engine_root = target if self.config.moves_data_root else source
        self.steps = []
        self.timings = {}
        self._previous_config = None
        self._switched = False
        # Whether the old data-root was a filesystem of its own (known once the copy is
        # verified; None when unknown, as after a journal that did not record it).
        self._source_own_filesystem = None

    def _journal(self, phase, was_running, inventory):
        write_journal(
            self.target,
            {
                "phase": phase,
                "method": "config" if self.config.moves_data_root else "mount",
                "source": self.source,
                "target": self.target,
                "driver": self.driver,
                "engine_was_running": was_running,
                "inventory": inventory,
                "previous_config": self._previous_config,
                "source_own_filesystem": self._source_own_filesystem,
                "containerd": self.containerd.journal(
                    self._previous_containerd_config, self._containerd_was_running
                )
                if self.containerd
                else None,
            },
        )

    def _timed(self, name, function, *args):
        started = time.monotonic()
        try:
            return function(*args)
        finally:
            self.timings[name] = round(time.monotonic() - started, 3)

    def run(self, journal=None):
        """Copy, stop, final pass, verify, switch, start, confirm; return the result facts.

        ``journal`` is an unfinished earlier run's (its copy is resumed and then verified in
        full). Raises RelocationError, having put daemon.json back and started the engine on
        the source, when anything fails after the engine was stopped.
        """
        try:
            return self._run(journal)
        finally:
            # The copy records changes of the source only while it is moved.
            for copy in (self.copy, self.containerd.copy if self.containerd else None):
                close = getattr(copy, "close", None)
                if close is not None:
                    close()

    def _run(self, journal):
        resumed = journal is not None
        client = self.engine()
        was_running = client is not None or bool(journal and journal.get("engine_was_running"))
        inventory = self._inventory_before(client, journal)
        if self.containerd:
            self._note_containerd_was_running(journal)
        self._refuse_used_target("nothing was changed")
        self._journal(PHASE_COPYING, was_running, inventory)
        self._bulk_copy(client)
        # The copy goes to disk while the engine still runs (the stop then waits only for what
        # the final pass writes), beside the comparison, which reads what is cached.
        writing = _InBackground(self._sync_targets)
        try:
            self.checkpoint("after-bulk-copy")
            early, early_containerd = self._compare_while_running(resumed)
        finally:
            self._timed("sync_while_running", writing.result)

        stopped_at = time.monotonic()
        if client is not None:
            self._stop_engine_before_final_pass(client)
        self.checkpoint("after-stop")
        try:
            if self.containerd:
                self._stop_containerd()
            self._refuse_used_target("the engine is stopped")
            self._final_pass(early)
            if self.containerd:
                self._final_pass_containerd(early_containerd)
            self._timed("sync", self._sync_targets)
            self.checkpoint("after-verify")
            # The journal learns the previous configuration before the switch, so that a run
            # killed in between can still tell where the engine will start, and undo it.
            self._refuse_used_target("the copy is verified but not switched to")
            self._refuse_restarted_services()
            self._record_previous_configuration(was_running, inventory)
            self._switched = True
            self._switch_configuration(was_running, inventory)
        except Exception as exc:
            self._roll_back(was_running, inventory, exc)
        return self.finish(was_running, inventory, stopped_at)

    def _inventory_before(self, client, journal):
        """What the engine holds before the move (None when it does not answer and no earlier
        run recorded it), with the containers an interrupted run stopped counted as running."""
        inventory = engine_inventory(client) if client is not None else None
        earlier = (journal or {}).get("inventory")
        if inventory is None:
            inventory = earlier
        elif earlier:
            # Containers the interrupted run stopped with the engine ran before the move too:
            # they are started again at the end, as they would have been.
            inventory["running"] = sorted(
                set(inventory["running"])
                | (set(earlier.get("running", ())) & set(inventory["containers"]))
            )
        return inventory

    def _note_containerd_was_running(self, journal):
        """Record whether containerd ran on its old root before the move."""
        # An interrupted run may have stopped containerd already: it ran before that run.
        recorded = (journal or {}).get("containerd") or {}
        self._containerd_was_running = self.containerd.runs_on(self.containerd.source) or bool(
            recorded.get("was_running")
        )

    def _bulk_copy(self, client):
        """The first copy of the data-root (and containerd's root), made while the engine may
        still run."""
        if not os.path.isdir(self.target):
            make_parents(self.target)
            os.mkdir(self.target, 0o710)
        self.checkpoint("before-bulk-copy")
        self.copy.on_progress = lambda: self.checkpoint("during-bulk-copy")
        bulk = self._timed("bulk_copy", self.copy.run)
        self.steps.append(
            "copied %d entries (%d bytes)%s"
            % (bulk["copied"], bulk["bytes"], " while the engine ran" if client else "")
        )
        outside = getattr(self.copy, "linked_outside", [])
        if outside:
            self.steps.append(
                "%d files in %s are hard-linked to files outside it (such as %s): the copy holds "
                "each as a file of its own" % (len(outside), self.source, outside[0])
            )
        if self.containerd:
            self._bulk_copy_containerd()

    def _compare_while_running(self, resumed):
        """The full comparisons made while the engine runs, ``(early, early_containerd)``; both
        None with ``verify_full`` or on a resumed run, which compare everything once stopped."""
        early = early_containerd = None
        if not (self.verify_full or resumed):
            early = self._timed(
                "verify_while_running", self.compare_in_detail, self.source, self.target
            )
            self.steps.append(
                "compared the whole copy while the engine ran (%d entries changed meanwhile)"
                % early.count
            )
            if self.containerd:
                early_containerd = self._timed(
                    "verify_containerd_while_running",
                    self.compare_in_detail,
                    self.containerd.source,
                    self.containerd.target,
                )
        return early, early_containerd

    def _stop_engine_before_final_pass(self, client):
        """Stop the engine; RelocationError, with nothing switched, when it does not stop."""
        try:
            self._timed("stop_engine", self._stop_engine, client)
        except Exception as exc:
            raise RelocationError(
                "could not stop the engine: %s; nothing was switched: the data-root is still "
                "%s, and a new run resumes the copy at %s" % (exc, self.source, self.target)
            ) from None
        self.steps.append("stopped the engine")

    def _stop_containerd(self):
        """Stop containerd once the engine has stopped; RelocationError when containers still
        run on layers in its root."""
        # After the engine, which keeps talking to it while it stops its containers.
        self._timed("stop_containerd", self.containerd.service.stop)
        self.steps.append("stopped containerd")
        # containerd.service stops with KillMode=process: its shims, and the containers
        # they run (live-restore, other clients), go on writing into its root.
        users = self.containerd.layer_users()
        if users:
            raise RelocationError(
                "containers still run on layers in containerd's root %s after containerd "
                "stopped (%s): their writes would be lost; stop them (live-restore keeps "
                "Docker's running, other clients keep theirs), then run again"
                % (self.containerd.source, "; ".join(users))
            )

    def _final_pass(self, early):
        """With the engine stopped: copy what changed since the bulk copy, then check the copy
        entry by entry (see ``_verify_and_repair``); RelocationError when it differs."""
        self.copy.on_progress = lambda: self.checkpoint("during-final-pass")
        final = self._timed("final_pass", self.copy.run)
        self.steps.append(final_pass_step(final, getattr(self.copy, "watch_unavailable", None)))
        self.checkpoint("after-final-pass")
        if self.copy.skipped_mounts:
            # With the engine stopped, its own mounts (merged directories, shm) are gone:
            # what is still mounted inside is data on another filesystem, not copied.
            raise RelocationError(
                "%s is still mounted inside the data-root with the engine stopped; its "
                "content was not copied: move it on its own, or unmount it first"
                % ", ".join(os.path.join(self.source, path) for path in self.copy.skipped_mounts)
            )
        count, examples, how = self._verify_and_repair(early)
        if count:
            raise RelocationError(
                "the copy at %s differs from %s in %d entries: %s"
                % (self.target, self.source, count, "; ".join(examples))
            )
        self.steps.append("verified the copy entry by entry (%s)" % how)

    def _refuse_restarted_services(self):
        """Raise RelocationError when the engine, or containerd on its old root, runs again
        although this run stopped it."""
        if self.engine() is not None:
            # Something else started it (socket activation, a restart policy of the
            # service manager, someone by hand): it may hold the source open.
            raise RelocationError(
                "an engine answers again although this run stopped it (started by its service "
                "manager, socket activation or by hand?); nothing was switched"
            )
        if self.containerd and self.containerd.runs_on(self.containerd.source):
            raise RelocationError(
                "containerd runs again on %s although this run stopped it (its service "
                "manager or someone by hand started it); nothing was switched"
                % self.containerd.source
            )

    def _record_previous_configuration(self, was_running, inventory):
        """Note what the switch replaces (and whether the source is a filesystem of its own)
        in the journal, phase switching."""
        self._source_own_filesystem = is_own_filesystem(self.source)
        self._previous_config = self.config.current()
        if self.containerd:
            self._previous_containerd_config = self.containerd.config.current()
        self._journal(PHASE_SWITCHING, was_running, inventory)

    def _switch_configuration(self, was_running, inventory):
        """Point daemon.json (or the fstab bind mount), then containerd's configuration, at the
        copies, and journal the phase switched."""
        # daemon.json first: a run killed between the two writes finds the engine's
        # data-root switched, and the next run finishes the move, containerd's part included
        # (``finish``), instead of judging a half-switched host from the start.
        self.config.switch(self.target, self.driver if self.pin_driver else None)
        self.checkpoint("during-switch")
        if self.containerd:
            self.containerd.config.switch(self.containerd.target)
            self.steps.append(
                self.containerd.config.describe(self.containerd.source, self.containerd.target)
            )
        self._journal(PHASE_SWITCHED, was_running, inventory)
        self.steps.append(self.config.describe(self.source, self.target, self.driver))
        self.checkpoint("after-config")

    def _stop_engine(self, client):
        self.service.stop()
        self.wait_for_engine_gone(client)

    def _sync_targets(self):
        self.sync(self.target)
        if self.containerd:
            self.sync(self.containerd.target)

    def _bulk_copy_containerd(self):
        tree = self.containerd
        if not os.path.isdir(tree.target):
            make_parents(tree.target)
            os.mkdir(tree.target, 0o711)
        tree.copy.on_progress = lambda: self.checkpoint("during-bulk-copy")
        bulk = self._timed("bulk_copy_containerd", tree.copy.run)
        self.steps.append(
            "copied %d entries (%d bytes) of containerd's root %s to %s%s"
            % (
                bulk["copied"],
                bulk["bytes"],
                tree.source,
                tree.target,
                " while it ran" if self._containerd_was_running else "",
            )
        )

    def _final_pass_containerd(self, early):
        tree = self.containerd
        tree.copy.on_progress = lambda: self.checkpoint("during-final-pass")
        final = self._timed("final_pass_containerd", tree.copy.run)
        self.steps.append(
            "containerd's root: "
            + final_pass_step(final, getattr(tree.copy, "watch_unavailable", None))
        )
        if tree.copy.skipped_mounts:
            raise RelocationError(
                "%s is still mounted inside containerd's root with containerd stopped; its "
                "content was not copied: unmount it first"
                % ", ".join(os.path.join(tree.source, path) for path in tree.copy.skipped_mounts)
            )
        count, examples, how = self._verify_and_repair(early, tree.source, tree.target, tree.copy)
        if count:
            raise RelocationError(
                "the copy at %s differs from containerd's root %s in %d entries: %s"
                % (tree.target, tree.source, count, "; ".join(examples))
            )
        self.steps.append("verified the copy of containerd's root entry by entry (%s)" % how)

    def _start_engine(self):
        self.service.start()
        return self.wait_for_engine()

    def _refuse_used_target(self, state):
        """Raise RelocationError when something else uses the target: an engine started on it
        (by hand, by its service manager, by another run) would lose files to the copy."""
        users = self.target_users()
        if users:
            raise RelocationError(
                "the target %s is in use (%s): %s; another engine may run on it. Stop whatever "
                "uses it, then run again" % (self.target, state, "; ".join(users))
            )

    def resume_switched(self, journal):
        """Take over the switch an earlier, interrupted run made, so that a failure in
        ``finish`` can still put the previous configuration back."""
        self._switched = True
        self._previous_config = journal.get("previous_config")
        self._source_own_filesystem = journal.get("source_own_filesystem")
        if self.containerd:
            recorded = journal.get("containerd") or {}
            self._previous_containerd_config = recorded.get("previous_config")
            self._containerd_was_running = bool(recorded.get("was_running"))

    def _verify_stopped(self, early, source, target, copy):
        """Compare source and copy with the engine stopped: ``(count, examples, how, paths)``,
        ``paths`` being the differing entries when they are all known, else None.

        After a full comparison made while the engine ran (``early``), an entry that has not
        changed since (same ctime, so the final pass left it alone) still matches; so only what
        the final pass copied, linked or removed, and what differed then, is compared again,
        contents included. Otherwise, or with ``verify_full``, everything is.
        """
        if early is None or not early.paths_complete:
            hash_paths = True if early is None else set(copy.changed) | early.paths
            found = self.compare(source, target, hash_paths)
            return (
                found.count,
                found.examples,
                ("content of every file" if hash_paths is True else "content of changed files"),
                found.paths if found.paths_complete else None,
            )
        paths = set(copy.changed) | early.paths
        directories = set(copy.changed_directories) | early.paths
        count, examples = self.compare_entries(source, target, paths, directories, paths)
        return (
            count,
            examples,
            (
                "whole tree while running, then the %d entries changed since, with content"
                % len(paths | directories)
            ),
            None,
        )

    def _verify_and_repair(self, early, source=None, target=None, copy=None):
        """The stopped check of ``copy`` from ``source`` to ``target`` (the data-root's by
        default). A copy that kept entries already on the target (a resumed run, or ``force``
        over a copy made by other means) may hold some that only looked copied; those are
        copied again, once, and checked again, contents included."""
        source = source or self.source
        target = target or self.target
        copy = copy or self.copy
        suffix = "" if copy is self.copy else "_containerd"
        count, examples, how, paths = self._timed(
            "verify" + suffix, self._verify_stopped, early, source, target, copy
        )
        if not count or not getattr(copy, "kept_existing", 0) or paths is None:
            return count, examples, how
        copy.forget(paths)
        again = self._timed("repair_pass" + suffix, copy.run)
        self.steps.append(
            "copied again %d entries that were on the target but differed from the source"
            % (again["copied"] + again["linked"] + again["removed"])
        )
        paths = paths | set(copy.changed)
        count, examples = self.compare_entries(
            source,
            target,
            paths,
            paths | set(copy.changed_directories),
            paths,
        )
        return count, examples, how + ", then what differed, after copying it again"

    def finish(self, was_running, inventory, stopped_at=None):
        """After the switch: start the engine on the target when it ran before, confirm it has
        the same driver, root, images, containers and volumes (starting containers that ran
        before), then keep the source under a new name or remove it."""
        result = {"restarted_containers": []}
        if self.containerd:
            try:
                self._start_containerd_on_target(was_running)
            except Exception as exc:
                self._roll_back(was_running, inventory, exc)
        if was_running:
            try:
                client = self.engine()
                if client is None:
                    client = self._timed("start_engine", self._start_engine)
                self.checkpoint("after-start")
                result["restarted_containers"] = self._confirm(client, inventory)
            except Exception as exc:
                self._roll_back(was_running, inventory, exc)
            self.steps.append("the engine runs from %s with everything it had" % self.engine_root)
        if stopped_at is not None:
            self.timings["downtime"] = round(time.monotonic() - stopped_at, 3)
        if not self.config.moves_data_root:
            # The old data is beneath the bind mount: it cannot be renamed there.
            result["source_kept_at"] = None
            self._settle_source_beneath_bind_mount()
        elif not os.path.lexists(self.source):
            # An earlier run that was stopped after this step kept or removed it already.
            result["source_kept_at"] = None
        elif is_own_filesystem(self.source):
            # A mount point cannot be renamed; the old filesystem stays where it is mounted.
            result["source_kept_at"] = self.source
            self.steps.append(
                "the old data-root %s is a filesystem of its own: left mounted as it is"
                % self.source
            )
        else:
            result["source_kept_at"] = self._rename_or_remove_source(was_running)
        if self.containerd:
            result["containerd_root_kept_at"] = self._keep_containerd_source(was_running)
        self.checkpoint("after-source-kept")
        remove_journal(self.target)
        return result

    def _start_containerd_on_target(self, was_running):
        """Finish containerd's part of the switch (a run killed between daemon.json and
        containerd's file left it undone), and start containerd when it ran before."""
        if self.containerd.configured_root() != self.containerd.target:
            # Killed between daemon.json and containerd's file: finish the switch.
            self.containerd.config.switch(self.containerd.target)
            self.steps.append(
                self.containerd.config.describe(self.containerd.source, self.containerd.target)
            )
        if (was_running or self._containerd_was_running) and not self.containerd.runs_on(
            self.containerd.target
        ):
            self._timed("start_containerd", self.containerd.service.start)
            self.steps.append("started containerd")

    def _settle_source_beneath_bind_mount(self):
        """The old data beneath the bind mount: removed with ``remove_source`` when it is no
        filesystem of its own, else left there; the steps say which."""
        if self.remove_source and self._source_own_filesystem is not False:
            # Beneath the bind mount is the old filesystem, mounted: removing "what lies
            # beneath" through the parent filesystem would delete the content of the
            # mount-point directory, which was never copied.
            self.steps.append(
                "the old data stays beneath the bind mount at %s: %s; unmount it (and remove "
                "its fstab line) once it is no longer needed"
                % (
                    self.source,
                    "it is a filesystem of its own"
                    if self._source_own_filesystem
                    else "whether it is a filesystem of its own was not recorded",
                )
            )
        elif self.remove_source:
            self.config.remove_hidden(self.source)
            self.steps.append("removed the old data beneath the bind mount at %s" % self.source)
        else:
            self.steps.append(
                "the old data stays beneath the bind mount at %s (remove_source removes it, "
                "unless it is a filesystem of its own)" % self.source
            )

    def _rename_or_remove_source(self, was_running):
        """The old data-root, once the engine runs on the copy: removed (``remove_source``,
        nothing mounted inside) or renamed beside itself. Returns where it is kept, or None."""
        release_self_bind_mount(self.source)
        # Never remove through a mount: whatever is mounted inside is not ours to delete.
        mounted = _path_users.mounts_inside(self.source, _mountinfo.read_mountinfo())
        if self.remove_source and was_running and not mounted:
            _tree_copy.remove_path(self.source)
            self.steps.append("removed the old data-root %s" % self.source)
            return None
        kept = kept_source_name(self.source)
        os.rename(self.source, kept)
        self.steps.append("kept the old data-root as %s" % kept)
        if self.remove_source and mounted:
            self.steps.append(
                "did not remove it: %s mounted inside; unmount, then remove %s"
                % (", ".join(mounted), kept)
            )
        return kept

    def _keep_containerd_source(self, was_running):
        """containerd's old root, once containerd runs on the new one: removed (remove_source)
        or renamed, as the data-root's. Returns where it is kept, or None."""
        tree = self.containerd
        if not os.path.lexists(tree.source):
            return None
        if tree.runs_on(tree.source):
            self.steps.append("containerd still has %s open: it is left where it is" % tree.source)
            return tree.source
        if is_own_filesystem(tree.source):
            self.steps.append(
                "containerd's old root %s is a filesystem of its own: left mounted as it is"
                % tree.source
            )
            return tree.source
        mounted = _path_users.mounts_inside(tree.source, _mountinfo.read_mountinfo())
        if self.remove_source and was_running and not mounted:
            _tree_copy.remove_path(tree.source)
            self.steps.append("removed containerd's old root %s" % tree.source)
            return None
        kept = kept_source_name(tree.source)
        os.rename(tree.source, kept)
        self.steps.append("kept containerd's old root as %s" % kept)
        return kept

    def _confirm(self, client, inventory):
        info = client.info()
        problems = []
        if engine_data_root(info) != self.engine_root:
            problems.append(
                "the engine reports data-root %s, not %s"
                % (info.get("DockerRootDir"), self.engine_root)
            )
        elif not os.path.samefile(self.engine_root, self.target):
            problems.append("%s does not show the copy at %s" % (self.engine_root, self.target))
        if info.get("Driver") != self.driver:
            problems.append(
                "the engine reports storage driver %s, not %s" % (info.get("Driver"), self.driver)
            )
        if self.containerd and not self.containerd.runs_on(self.containerd.target):
            problems.append(
                "containerd does not run on its new root %s (its metadata database there is not "
                "open)" % self.containerd.target
            )
        restarted = []
        if not problems and inventory is not None:
            restarted = self._start_stopped(client, inventory)
            problems.extend(inventory_problems(inventory, engine_inventory(client)))
        if problems:
            raise RelocationError("; ".join(problems))
        return restarted

    def _start_stopped(self, client, inventory):
        """Start the containers that ran before the engine stopped and do not run now (only
        those with a restart policy come back by themselves). Returns their IDs."""
        if not inventory:
            return []
        now = engine_inventory(client)
        restarted = []
        for container in sorted(set(inventory["running"]) - set(now["running"])):
            if container in now["containers"]:
                self.start_container(client, container)
                restarted.append(container)
        return restarted

    def _roll_back(self, was_running, inventory, error):
        """Put daemon.json back, start the engine on the source, and raise RelocationError."""
        notes = []
        if self._switched:
            try:
                client = self.engine()
                self.service.stop()
                if client is not None:
                    self.wait_for_engine_gone(client)
            except Exception:  # an engine that did not start is stopped already
                pass
            restored = []
            if self.containerd:
                try:
                    self.containerd.service.stop()
                except Exception:  # a containerd that did not start is stopped already
                    pass
                try:
                    self.containerd.config.restore(self._previous_containerd_config)
                    notes.append("containerd's configuration restored")
                except Exception as exc:
                    restored.append(exc)
                    notes.append("containerd's configuration could NOT be restored (%s)" % exc)
            try:
                self.config.restore(self._previous_config)
                notes.append("daemon.json restored")
            except Exception as exc:
                restored.append(exc)
                notes.append("daemon.json could NOT be restored (%s)" % exc)
            if not restored:
                self._switched = False
                self._journal(PHASE_COPYING, was_running, inventory)
        if self.containerd and self._containerd_was_running and not self._switched:
            try:
                if not self.containerd.runs_on(self.containerd.source):
                    # restart: a containerd that answers on another root is not the one wanted.
                    self.containerd.service.restart()
                if not self.containerd.runs_on(self.containerd.source):
                    raise RelocationError("its metadata database there is not open")
                notes.append("containerd runs on %s again" % self.containerd.source)
            except Exception as exc:
                notes.append("containerd did NOT start on %s (%s)" % (self.containerd.source, exc))
        if was_running and not self._switched:
            try:
                client = self.engine()
                if client is None:
                    self.service.start()
                    client = self.wait_for_engine()
                root = engine_data_root(client.info())
                if root != self.source:
                    raise RelocationError("it reports data-root %s" % root)
                notes.append("the engine runs on %s again" % self.source)
                restarted = self._start_stopped(client, inventory)
                if restarted:
                    notes.append("%d containers that ran before were started" % len(restarted))
            except Exception as exc:
                notes.append("the engine did NOT start on %s (%s)" % (self.source, exc))
        raise RelocationError(
            "%s; rolled back: %s" % (error, ", ".join(notes) or "nothing had changed")
        ) from None


# ---------------------------------------------------------------------------------------------
# The live collaborators: daemon.json, the Engine API, the service manager


class DaemonJsonSwitch:
    """Writes data-root and the pinned driver into daemon.json, and puts the old text back."""

    moves_data_root = True

    def __init__(self, path):
        # A daemon.json that is a symbolic link stays one: its target is rewritten.
        self.path = os.path.realpath(path)

    @staticmethod
    def describe(source, target, driver):
        return "daemon.json names data-root %s and storage-driver %s" % (target, driver)

    def current(self):
        """The file's text now, or None when there is none."""
        raw, _config = _daemon_json.read_daemon_json_for_update(self.path)
        return raw.decode("utf-8") if raw is not None else None

    def switch(self, data_root, driver):
        """Write ``data-root``, and ``storage-driver`` unless ``driver`` is None (a dockerd
        flag fixes it already)."""
        raw, config = _daemon_json.read_daemon_json_for_update(self.path)
        new, _changed = _daemon_config.merge_storage_keys(
            config, {"data-root": data_root, "storage-driver": driver}
        )
        if "graph" in new:  # the legacy key would fight the new one
            del new["graph"]
        _daemon_json.write_daemon_json_atomically(self.path, _daemon_config.render_daemon_json(new))
        return raw.decode("utf-8") if raw is not None else None

    def restore(self, previous):
        if previous is None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        else:
            _daemon_json.write_daemon_json_atomically(self.path, previous)


class _InBackground:
    """``function(*args)`` in a thread of its own; ``result()`` waits for it and returns what
    it returned, or raises what it raised."""

    def __init__(self, function, *args):
        self._outcome = None
        self._thread = threading.Thread(target=self._call, args=(function, args), daemon=True)
        self._thread.start()

    def _call(self, function, args):
        try:
            self._outcome = (True, function(*args))
        except BaseException as exc:  # handed to the caller of result()
            self._outcome = (False, exc)

    def result(self):
        self._thread.join()
        succeeded, value = self._outcome
        if not succeeded:
            raise value
        return value


def final_pass_step(stats, watch_unavailable):
    """The step that tells what the final pass did, and how much of the tree it visited."""
    done = "copied %d entries, removed %d" % (stats["copied"], stats["removed"])
    if stats.get("visited") == "changes":
        return (
            "final pass over the %d entries where changes were recorded (in %d directories): %s"
            % (
                stats["entries"],
                stats["directories"],
                done,
            )
        )
    why = " (changes could not be recorded: %s)" % watch_unavailable if watch_unavailable else ""
    return "final pass over the whole tree%s: %s" % (why, done)


def sync_filesystem(path):
    """Write to disk what the page cache holds of the filesystem of ``path`` (syncfs; sync
    where the C library lacks it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            syncfs = ctypes.CDLL(None, use_errno=True).syncfs
        except (OSError, AttributeError):
            os.sync()
            return
        if syncfs(fd) != 0:
            number = ctypes.get_errno()
            raise OSError(number, "cannot write %s to disk: %s" % (path, os.strerror(number)))
    finally:
        os.close(fd)


def engine_client(docker_host, timeout):
    """A client when the engine answers on ``docker_host``, else None."""
    client = ContainerEngineClient(docker_host, timeout=timeout)
    try:
        client.info()
    except EngineUnavailable:
        return None
    return client


def wait_for_engine(docker_host, timeout):
    """A client once the engine answers on ``docker_host``; ServiceError after ``timeout``."""
    client = ContainerEngineClient(docker_host, timeout=timeout)
    _engine_service.wait_for_engine(client, timeout)
    return client


def fstab_escape(path):
    """A path as fstab writes it: space, tab, newline and backslash as octal escapes."""
    return "".join("\\%03o" % ord(c) if c in " \t\n\\" else c for c in path)


def fstab_entries_for(text, mount_point):
    """``(line number, line)`` of the fstab lines that mount something on ``mount_point``."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if len(fields) >= 2 and not fields[0].startswith("#"):
            if _mountinfo.unescape_mount_field(fields[1]).rstrip("/") == mount_point.rstrip("/"):
                found.append((number, line))
    return found


def fstab_with_bind(text, target, mount_point):
    """fstab ``text`` with a line that bind-mounts ``target`` on ``mount_point`` at boot."""
    line = "%s %s none bind 0 0\n" % (fstab_escape(target), fstab_escape(mount_point))
    if text and not text.endswith("\n"):
        text += "\n"
    return text + "# data-root moved by dockerhost.storage.data_root\n" + line


class MountSwitch:
    """Bind-mounts the target over the old data-root path, with an fstab line for boot, for
    setups that hard-code /var/lib/docker; daemon.json is not touched."""

    moves_data_root = False

    def __init__(self, mount_point, fstab_path, target):
        self.mount_point = mount_point
        self.fstab_path = fstab_path
        self.target = target

    @staticmethod
    def describe(source, target, driver):
        return "%s is bind-mounted on %s, and /etc/fstab mounts it at boot" % (target, source)

    def _read(self):
        try:
            with open(self.fstab_path, encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def current(self):
        return self._read()

    def switch(self, target, driver):
        previous = self._read()
        write_text_atomically(
            self.fstab_path, fstab_with_bind(previous or "", target, self.mount_point)
        )
        try:
            release_self_bind_mount(self.mount_point)
            _filesystem_probe.bind_mount(target, self.mount_point)
        except BaseException:
            self.restore(previous)
            raise
        return previous

    def restore(self, previous):
        if os.path.exists(self.target) and os.path.samefile(self.mount_point, self.target):
            _filesystem_probe.unmount(self.mount_point)
        if previous is None:
            try:
                os.unlink(self.fstab_path)
            except FileNotFoundError:
                pass
        else:
            write_text_atomically(self.fstab_path, previous)

    def remove_hidden(self, path):
        """Remove the content of ``path`` that the bind mount hides, through a private,
        non-recursive bind mount of the filesystem that holds it."""
        mount = _mountinfo.mount_for_path(
            _mountinfo.read_mountinfo(), os.path.dirname(path.rstrip("/")) or "/"
        )
        view = tempfile.mkdtemp(prefix="dockerhost-storage-hidden-", dir="/run")
        try:
            _filesystem_probe.bind_mount(mount.mount_point, view)
            try:
                hidden = os.path.join(view, os.path.relpath(path, mount.mount_point))
                for name in os.listdir(hidden):
                    _tree_copy.remove_path(os.path.join(hidden, name))
            finally:
                _filesystem_probe.unmount(view)
        finally:
            os.rmdir(view)


class ContainerdRoot:
    """The host containerd's root moved with the data-root (Relocation's ``containerd``):
    ``source`` and ``target`` paths, ``copy`` (a TreeCopy between them), ``service``
    (``_containerd.ContainerdService``), ``config`` (``_containerd.ContainerdRootSwitch``),
    and ``runs_on(root)``: whether a running containerd has that root open."""

    def __init__(
        self, source, target, copy, service, config, runs_on=None, layer_users=None, namespaces=None
    ):
        self.source = source
        self.target = target
        self.copy = copy
        self.service = service
        self.config = config
        self.runs_on = runs_on or _containerd.holds_root
        # Sentences naming what still runs on layers under the old root, once containerd stopped.
        self.layer_users = layer_users or (lambda: _containerd.layer_users(source))
        # The namespaces the preflight found, kept in the journal for a resumed run.
        self.namespaces = namespaces

    def configured_root(self):
        """The root containerd's configuration names now."""
        return _containerd.configured_root(self.config.current())

    def journal(self, previous_config, was_running):
        return {
            "source": self.source,
            "target": self.target,
            "config_path": self.config.shown_path,
            "previous_config": previous_config,
            "was_running": was_running,
            "namespaces": self.namespaces,
        }


def live_collaborators(
    copy, service, config_path, docker_host, timeout, checkpoint=None, switch=None
):
    """The collaborators of a Relocation on this host (see Relocation). ``switch`` is a
    MountSwitch for ``method: mount``; daemon.json at ``config_path`` is switched otherwise."""
    return {
        "copy": copy,
        "compare": compare_trees_in_detail,
        "compare_in_detail": compare_trees_in_detail,
        "compare_entries": compare_entries,
        "config": switch or DaemonJsonSwitch(config_path),
        "service": service,
        "engine": lambda: engine_client(docker_host, timeout),
        "wait_for_engine": lambda: wait_for_engine(docker_host, timeout),
        "wait_for_engine_gone": lambda client: _engine_service.wait_for_engine_gone(
            client, timeout
        ),
        "start_container": lambda client, container: client.start_container(container),
        "checkpoint": checkpoint or (lambda name: None),
        "target_users": lambda: _path_users.users_of(copy.target) if copy is not None else [],
        "sync": sync_filesystem,
    }
