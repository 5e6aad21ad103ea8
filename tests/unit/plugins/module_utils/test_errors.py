"""Every error the collection raises for a user derives from one base, so a module catches it
once; an error outside it would escape a module as a traceback."""

import importlib
import inspect
import os
import pkgutil

import pytest

from ansible_collections.dockerhost.storage.plugins import module_utils
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError
from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import (
    MountTableError,
    read_mount_table,
)

# Signals between the collection's own functions, never shown to a user.
INTERNAL = {"_WalkEverything", "_DuplicateKey", "_RefusedToken", "WatchUnavailable"}


def public_errors():
    found = []
    for info in pkgutil.iter_modules(module_utils.__path__):
        module = importlib.import_module("%s.%s" % (module_utils.__name__, info.name))
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, Exception)
                and value.__module__ == module.__name__
                and name not in INTERNAL
            ):
                found.append(value)
    return found


def test_every_error_meant_for_a_user_is_a_storage_error():
    errors = public_errors()
    assert len(errors) >= 17, [error.__name__ for error in errors]
    outside = [error.__name__ for error in errors if not issubclass(error, StorageError)]
    assert outside == []


def test_an_unreadable_mount_table_is_named(tmp_path):
    missing = str(tmp_path / "mountinfo")
    with pytest.raises(MountTableError, match="cannot read the mount table %s: " % missing):
        read_mount_table(missing)


def test_a_mount_table_that_does_not_parse_is_named(tmp_path):
    garbled = tmp_path / "mountinfo"
    garbled.write_text("not a mountinfo line\n")
    with pytest.raises(StorageError, match=str(garbled)):
        read_mount_table(str(garbled))
    assert os.path.exists(garbled)
