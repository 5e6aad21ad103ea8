# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replace a small file (daemon.json, fstab, a journal) so that a crash leaves the old or the
new content, never a mix.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os
import tempfile


def write_text_atomically(path, text, new_mode=0o644):
    """Replace ``path`` with ``text`` in one step: a temporary file in the same directory,
    flushed to disk, given the owner and mode of the file it replaces (root:root and
    ``new_mode`` for a new file), then renamed over it; the directory is flushed too, so the
    rename survives a crash. Raises OSError; the temporary file is removed then.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        current = os.stat(path)
        mode, uid, gid = current.st_mode & 0o7777, current.st_uid, current.st_gid
    except FileNotFoundError:
        mode, uid, gid = new_mode, 0, 0
    handle, temporary = tempfile.mkstemp(
        prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(text.encode("utf-8"))
            stream.flush()
            os.fsync(stream.fileno())
            if os.geteuid() == 0:
                os.fchown(stream.fileno(), uid, gid)
            os.fchmod(stream.fileno(), mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)
