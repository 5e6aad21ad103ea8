# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the inodes and bytes of a data-root went: a walk of the live tree, counted as
``du -x --inodes`` and ``du -x -B1`` count them.

This file touches the live filesystem (it reads directories and stats every entry, and never
writes). Counting rules, the same as GNU du's:

- every inode once: an entry with more than one link is remembered by (device, inode) and
  counted the first time only; directories and single-link files need no memory;
- bytes are allocated blocks (``st_blocks * 512``), not apparent sizes;
- the walk never leaves the filesystem of the top directory: an entry whose ``st_dev`` differs
  (a mount point such as a running container's merged directory, a tmpfs, a volume on another
  device, a btrfs subvolume) is neither counted nor entered;
- the top directory itself counts.

Memory stays bounded: directories are walked depth first with one open descriptor per level,
no list of paths is kept, and the largest layers are kept in a heap of ``top_layers`` items.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import heapq
import marshal
import os
import stat

# Directories whose children are layers, per storage driver (relative to the data-root).
LAYER_PARENTS = ("overlay2", "fuse-overlayfs", "aufs/diff", "btrfs/subvolumes", "vfs/dir")
# Entries of a layer parent that are not layers (overlay2/l holds the short-name symlinks).
NOT_LAYERS = frozenset(("l",))

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# One Python process makes the same system calls as du (one fstatat per entry, the same per
# directory) and spends about 1.3 to 1.4 times du's CPU time on them: the rest is building stat
# results. Several processes walking different subtrees make up for it. Threads do not help:
# the GIL serialises the Python half (measured: no gain with 2 to 4 threads).
#
# Four processes rather than one per core, measured on 2 cores at 100,000 files against du:
# with a warm cache 2, 3 and 4 walkers take 0.71, 0.72 and 0.73 of du's time (the extra ones
# cost a fork each); with three other busy processes of the same session 0.97, 0.74 and 0.64
# (the scheduler gives each runnable process of a session its share; a load in other sessions
# caps the session at its own share instead, whatever the count: 1.43 to 1.57); with a cold
# cache 2 and 4 walkers take 0.75 and 0.59 (more directory and inode reads in flight).
# On a single CPU the walk stays in this process (more were not measured there).
_CPUS = os.cpu_count() or 1
WORKERS = min(4, 2 * _CPUS) if _CPUS > 1 else 1
_INDEX = 4  # bytes per task index in the work pipe


def _walk_directory(dir_fd, device, links, task):
    """Count the inodes and 512-byte blocks below the open directory ``dir_fd`` (not the
    directory itself), depth first with one descriptor per level; closes ``dir_fd``.

    ``links`` maps the inode numbers of multi-link files already counted to ``(blocks,
    task)``. Returns ``(inodes, blocks, errors)``; errors are entries that vanished or could
    not be read.
    """
    # os.listdir and os.lstat with dir_fd are measurably faster than os.scandir here: the
    # DirEntry objects cost more than the d_type they carry saves (every entry needs a stat
    # for its blocks anyway).
    lstat = os.lstat
    listdir = os.listdir
    isdir = stat.S_ISDIR
    inodes = 0
    blocks = 0
    errors = 0
    try:
        stack = [(dir_fd, iter(listdir(dir_fd)))]
    except OSError:
        os.close(dir_fd)
        return 0, 0, 1
    while stack:
        fd, names = stack[-1]
        descended = False
        for name in names:
            try:
                st = lstat(name, dir_fd=fd)
            except OSError:
                errors += 1
                continue
            if st.st_dev != device:
                continue  # a mount point: neither counted nor entered, as du -x
            if isdir(st.st_mode):
                inodes += 1
                blocks += st.st_blocks
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    errors += 1
                    continue
                try:
                    stack.append((child, iter(listdir(child))))
                except OSError:
                    os.close(child)
                    errors += 1
                    continue
                descended = True
                break
            if st.st_nlink > 1:
                if st.st_ino in links:
                    continue
                links[st.st_ino] = (st.st_blocks, task)
            inodes += 1
            blocks += st.st_blocks
        if not descended:
            os.close(fd)
            stack.pop()
    return inodes, blocks, errors


def _count_entry(parent_fd, name, device, links, task):
    """Count one entry of an open directory and, for a directory, everything below it.

    Returns ``(inodes, blocks, errors)``; an entry on another device counts nothing.
    """
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError:
        return 0, 0, 1
    if st.st_dev != device:
        return 0, 0, 0
    if not stat.S_ISDIR(st.st_mode):
        if st.st_nlink > 1:
            if st.st_ino in links:
                return 0, 0, 0
            links[st.st_ino] = (st.st_blocks, task)
        return 1, st.st_blocks, 0
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError:
        return 1, st.st_blocks, 1
    inodes, blocks, errors = _walk_directory(fd, device, links, task)
    return inodes + 1, blocks + st.st_blocks, errors


class _Plan:
    """The work of one breakdown: tasks for the workers and what was counted while planning."""

    def __init__(self, device, layer_parents=LAYER_PARENTS):
        self.device = device
        self.layer_parents = layer_parents  # relative to the top directory
        self.tasks = []  # (parent_fd, name, top-level name, layer parent or None)
        self.counted = []  # (top-level name, inodes, blocks)
        self.fds = []  # descriptors to close when the walk is over


def _open_for_planning(plan, parent_fd, name, top):
    """Open ``name``, a directory whose children are planned one by one, and count it now
    (under ``top``); None when it is not a directory on the walked filesystem or cannot be
    opened: it is then a task of its own."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        if st.st_dev != plan.device or not stat.S_ISDIR(st.st_mode):
            plan.tasks.append((parent_fd, name, top, None))
            return None
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError:
        plan.tasks.append((parent_fd, name, top, None))
        return None
    plan.fds.append(fd)
    plan.counted.append((top, 1, st.st_blocks))
    return fd


def _plan_directory(plan, parent_fd, name, top, relative):
    """Plan ``relative``, a directory that is or leads to a layer parent: count the directory
    itself now and queue its children, each layer as a task of its own."""
    fd = _open_for_planning(plan, parent_fd, name, top)
    if fd is None:
        return
    is_layer_parent = relative in plan.layer_parents
    for child in _list_names(fd):
        child_relative = relative + "/" + child
        if is_layer_parent and child not in NOT_LAYERS:
            plan.tasks.append((fd, child, top, relative))
        elif any((parent + "/").startswith(child_relative + "/") for parent in plan.layer_parents):
            _plan_directory(plan, fd, child, top, child_relative)
        else:
            plan.tasks.append((fd, child, top, None))


def _list_names(dir_fd):
    """Names in an open directory, sorted so that results come in a stable order."""
    with os.scandir(dir_fd) as iterator:
        return sorted(entry.name for entry in iterator)


def _run_tasks(plan, task_ids, links):
    """Count the given tasks in this process: ``{task: (inodes, blocks, errors)}``."""
    results = {}
    for task in task_ids:
        parent_fd, name, _top, _layer = plan.tasks[task]
        results[task] = _count_entry(parent_fd, name, plan.device, links, task)
    return results


def _read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _worker(plan, queue_fd, result_fd):
    """Child process body: take task indices from the work pipe until it is empty, then send
    the counts and the multi-link inodes seen, and exit without returning to the caller."""
    status = 1
    try:
        links = {}
        results = {}
        while True:
            data = os.read(queue_fd, _INDEX)
            if not data:
                break
            results.update(_run_tasks(plan, [int.from_bytes(data, "little")], links))
        payload = marshal.dumps((results, links))
        view = memoryview(payload)
        while view:
            view = view[os.write(result_fd, view) :]
        status = 0
    finally:
        os._exit(status)


def _start_workers(plan, queue_read, queue_write, workers, children):
    """Fork up to ``workers`` child processes that count tasks read from the work pipe
    (``queue_read``), each adding ``(pid, read end of its result pipe)`` to ``children``;
    stops at the first fork that fails."""
    for _worker_number in range(workers):
        result_read, result_write = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(result_read)
            os.close(result_write)
            break
        if pid == 0:  # pragma: no cover - the child never returns
            os.close(queue_write)
            os.close(result_read)
            _worker(plan, queue_read, result_write)
        os.close(result_write)
        children.append((pid, result_read))


def _count_links_once(results, counted_links, child_links, rank):
    """Merge one worker's multi-link inodes (``child_links``) into ``counted_links``: an inode
    another worker counted too stays in the task that comes first in ``rank`` and is taken out
    of the other task's counts in ``results``."""
    for inode, (blocks, task) in child_links.items():
        if inode not in counted_links:
            counted_links[inode] = (blocks, task)
            continue
        # Two workers counted this inode through different names: keep it in the task
        # that comes first, take it out of the other.
        other = counted_links[inode][1]
        if rank[task] < rank[other]:
            counted_links[inode] = (blocks, task)
            task = other
        inodes_, blocks_, errors_ = results[task]
        results[task] = (inodes_ - 1, blocks_ - blocks, errors_)


def _run_in_workers(plan, order, workers):
    """Count every task in ``workers`` child processes that take task indices, in ``order``,
    from a shared pipe.

    Returns ``{task: (inodes, blocks, errors)}`` with every multi-link inode counted once, in
    the task earliest in ``order`` that holds it, as a single process would. Falls back to this
    process when fork is not possible.
    """
    queue_read, queue_write = os.pipe()
    children = []
    try:
        _start_workers(plan, queue_read, queue_write, workers, children)
        os.close(queue_read)
        queue_read = None
        if not children:
            os.close(queue_write)
            queue_write = None
            return _run_tasks(plan, order, {})
        for task in order:
            os.write(queue_write, task.to_bytes(_INDEX, "little"))
        os.close(queue_write)
        queue_write = None
        rank = {task: position for position, task in enumerate(order)}
        results = {}
        counted_links = {}
        for pid, result_read in children:
            payload = _read_all(result_read)
            os.close(result_read)
            _pid, status = os.waitpid(pid, 0)
            if status != 0 or not payload:
                raise OSError("a breakdown worker process failed (wait status %d)" % status)
            child_results, child_links = marshal.loads(payload)
            results.update(child_results)
            _count_links_once(results, counted_links, child_links, rank)
        children = []
        return results
    finally:
        for fd in (queue_read, queue_write):
            if fd is not None:
                os.close(fd)
        for pid, result_read in children:
            os.close(result_read)
            os.waitpid(pid, 0)


def tree_usage(data_root, top_layers=10, workers=WORKERS, store=None):
    """Inodes and bytes below ``data_root``, per top-level entry and for the largest layers.

    ``store``: the name of the remapped root (``<uid>.<gid>``) under userns-remap, where the
    engine keeps its layers: its entries are listed as ``<uid>.<gid>/<name>`` (the directory
    itself as ``<uid>.<gid>``) and its layer directories count as layers, beside whatever an
    unremapped engine left at the top.

    Returns a dict:

    - ``path``, ``inodes``, ``bytes``: totals for the whole tree, the top directory included
      (what ``du -x --inodes -s`` and ``du -x -s -B1`` print);
    - ``directories``: ``{name: {"inodes": n, "bytes": n}}`` for every top-level entry on the
      same filesystem, sorted by name;
    - ``top_layers``: up to ``top_layers`` dicts ``{"id", "parent", "inodes", "bytes"}``,
      most inodes first, for the children of the layer directories (``overlay2/<id>`` and the
      others in LAYER_PARENTS);
    - ``skipped``: entries that vanished or could not be read during the walk, usually 0.

    A multi-link inode counts once: in the first top-level entry by name that holds it (entries
    outside layer directories before layers). ``workers`` > 1 walks in that many child
    processes. Raises OSError when ``data_root`` cannot be opened.
    """
    root_fd = os.open(data_root, _DIR_FLAGS)
    root_st = os.fstat(root_fd)
    remapped = tuple(store + "/" + parent for parent in LAYER_PARENTS) if store else ()
    plan = _Plan(root_st.st_dev, LAYER_PARENTS + remapped)
    plan.fds.append(root_fd)
    try:
        layer_tops = {parent.split("/", 1)[0] for parent in LAYER_PARENTS}
        for name in _list_names(root_fd):
            if name == store:
                _plan_store(plan, root_fd, name, layer_tops)
            elif name in layer_tops:
                _plan_directory(plan, root_fd, name, name, name)
            else:
                plan.tasks.append((root_fd, name, name, None))
        # Tasks outside layer directories first (a single one, volumes say, may be the
        # biggest), then the layers; each group by name, as planned.
        order = sorted(range(len(plan.tasks)), key=lambda task: plan.tasks[task][3] is not None)
        if workers > 1 and len(plan.tasks) > 1:
            results = _run_in_workers(plan, order, workers)
        else:
            results = _run_tasks(plan, order, {})
    finally:
        for fd in plan.fds:
            os.close(fd)
    return _usage_report(data_root, root_st, plan, results, top_layers)


def _usage_report(data_root, root_st, plan, results, top_layers):
    """``tree_usage``'s answer from the counts made while planning and the tasks' ``results``:
    totals, per top-level entry, and the ``top_layers`` largest layers."""
    directories = {}
    heap = []
    skipped = 0
    for top, inodes, blocks in plan.counted:
        _add(directories, top, inodes, blocks)
    for task, (_parent_fd, name, top, layer_parent) in enumerate(plan.tasks):
        inodes, blocks, errors = results[task]
        skipped += errors
        if inodes:
            _add(directories, top, inodes, blocks)
        if layer_parent is not None and top_layers > 0:
            item = (inodes, blocks * 512, layer_parent, name)
            if len(heap) < top_layers:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    return {
        "path": data_root,
        "inodes": 1 + sum(item["inodes"] for item in directories.values()),
        "bytes": root_st.st_blocks * 512 + sum(item["bytes"] for item in directories.values()),
        "directories": dict(sorted(directories.items())),
        "top_layers": [
            {"id": name, "parent": parent, "inodes": inodes, "bytes": size}
            for inodes, size, parent, name in sorted(heap, reverse=True)
        ],
        "skipped": skipped,
    }


def _plan_store(plan, root_fd, store, layer_tops):
    """Plan the remapped root: the directory itself now, each entry as a top-level one of its
    own (``<store>/<name>``)."""
    fd = _open_for_planning(plan, root_fd, store, store)
    if fd is None:
        return
    for name in _list_names(fd):
        top = store + "/" + name
        if name in layer_tops:
            _plan_directory(plan, fd, name, top, top)
        else:
            plan.tasks.append((fd, name, top, None))


def _add(directories, top, inodes, blocks):
    totals = directories.setdefault(top, {"inodes": 0, "bytes": 0})
    totals["inodes"] += inodes
    totals["bytes"] += blocks * 512
