# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one base of the errors the collection raises for a user to read.

Every such error's message names the file, key, option or path and what to do; a module catches
``StorageError`` once and fails the task with ``str(error)`` and the error's ``result`` (what
the task returns beside the message, such as the plan that was refused). Anything else that
escapes is a bug, shown with its traceback.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations


class StorageError(Exception):
    """A refusal or a failure with a message meant for the user of a module, and the
    ``result`` to return with it (a dict, empty by default)."""

    def __init__(self, message="", result=None):
        super().__init__(message)
        self.result = dict(result or {})
