"""Modules run on the managed hosts and import only module_utils; action plugins run on the
controller and keep their code in plugin_utils, which may import module_utils but not the
reverse."""

from __future__ import annotations

import ast
import os

PLUGINS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "plugins"
)


def _imports(path):
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from ("%s.%s" % (node.module, alias.name) for alias in node.names)


def _python_files(directory):
    for name in sorted(os.listdir(os.path.join(PLUGINS, directory))):
        if name.endswith(".py"):
            yield os.path.join(PLUGINS, directory, name)


def test_what_runs_on_the_hosts_never_imports_controller_code():
    for directory in ("modules", "module_utils"):
        for path in _python_files(directory):
            bad = [name for name in _imports(path) if ".plugin_utils" in name]
            assert not bad, "%s imports %s" % (path, bad)


def test_action_plugins_import_their_code_from_plugin_utils_only():
    for path in _python_files("action"):
        own = [name for name in _imports(path) if "dockerhost.storage" in name]
        assert own and all(".plugins.plugin_utils" in name for name in own), (path, own)
