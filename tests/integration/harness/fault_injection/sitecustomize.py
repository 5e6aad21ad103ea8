"""Test-only: kill a run of the data_root module at a named step of its transaction.

With this directory on the module interpreter's PYTHONPATH (``run_module(...,
environment=fault_environment(step))``), Python imports this file at start-up. When
``DOCKERHOST_STORAGE_FAULT_AT`` names a step, every ``Relocation`` the module builds then
sends itself SIGKILL at that checkpoint (``checkpoint(name)``, between the steps of the
transaction), as a power loss or an OOM kill would stop it. The module as shipped has no such
hook: the checkpoints it hands its Relocation do nothing.
"""

import importlib.abc
import importlib.util
import os
import signal
import sys

STEP = os.environ.get("DOCKERHOST_STORAGE_FAULT_AT")
RELOCATION = "ansible_collections.dockerhost.storage.plugins.module_utils._relocation"


def _kill_at_the_step(module):
    original = module.Relocation.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        checkpoint = self.checkpoint

        def checkpoint_or_die(name):
            if name == STEP:
                os.kill(os.getpid(), signal.SIGKILL)
            checkpoint(name)

        self.checkpoint = checkpoint_or_die

    module.Relocation.__init__ = __init__


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds the relocation module as Python would, and patches it once it has run."""

    def find_spec(self, fullname, path, target=None):
        if fullname != RELOCATION:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _kill_at_the_step(module)

        spec.loader.exec_module = exec_module
        return spec


if STEP:
    sys.meta_path.insert(0, _PatchOnImport())
