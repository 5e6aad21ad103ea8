"""Mutation testing for plugins/module_utils: which small changes to the code do the unit tests miss?

    .venv/bin/python tests/support/mutation.py [--module _drivers] [--jobs N] [--list [FILE]]

(``scripts/test-mutation`` runs it.) Each target module is parsed with ``ast`` and changed in one
place at a time: a comparison flipped or moved by one (``<`` and ``<=``, ``==`` and ``!=``, ``in``
and ``not in``, ``is`` and ``is not``), a number moved by one either way, ``and`` and ``or``
swapped, a ``not`` dropped, ``True`` and ``False`` swapped, a returned value replaced by None, a
string that is compared with altered, a ``continue`` or ``break`` or the body of an ``if``
replaced by ``pass``. The module's unit tests run against each such mutant:
``tests/unit/plugins/module_utils/test_X.py`` for ``_X.py``, plus every unit test file that
imports ``_X``. A mutant is killed when a test fails (or the mutated module cannot be loaded),
survives when all pass, and times out when they take longer than the per-mutant limit.

How: the collection is copied into a scratch directory (the files of this checkout are never
edited: a run that is killed leaves the tree as it was), and one pytest session per module
collects the tests there (``-x -q -p no:cacheprovider``) without running them. For each mutant
that session forks a child, which loads the mutated source in place of the module (its
functions keep their identity and get the mutated code, so that references the tests took at
collection run the mutant too; other names are rebound wherever the collection and the tests
imported them), and runs the collected tests until the first failure. The child runs in its
own process group, which a timeout kills whole, with its own ``tmp_path`` directories; each mutant therefore starts from the same state and
costs only its tests, not an interpreter, pytest and ansible.
"""

import argparse
import ast
import collections
import importlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
MODULE_UTILS = os.path.join("plugins", "module_utils")
UNIT_TESTS = os.path.join("tests", "unit")
TARGETS = (
    "_drivers",
    "_audit_policy",
    "_capacity",
    "_daemon_json",
    "_daemon_config",
    "_layer_store",
    "_overlay_mounts",
    "_tree_manifest",
    "_relocation",
)
DEFAULT_REPORT = os.path.join(REPO_ROOT, ".build", "reports", "mutation.json")
PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "--no-header", "-W", "ignore"]
PACKAGE = "ansible_collections.dockerhost.storage.plugins.module_utils"

# The children must import the collection from their copy, never from this checkout.
sys.path[:] = [p for p in sys.path if p not in ("", HERE, REPO_ROOT, os.getcwd())]

import pytest  # noqa: E402

try:  # imported once here rather than in every child; the tests import it too
    importlib.import_module("ansible.module_utils.basic")
except ImportError:  # pragma: no cover
    pass


# --- mutants ----------------------------------------------------------------------------------

COMPARE_SWAPS = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
SYMBOLS = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.And: "and",
    ast.Or: "or",
}
STRING_MARK = "~mutant"


class Mutant:
    """One change: where it is (line, function), what it does, and how to make it in a tree."""

    def __init__(self, node, function, description, change):
        self.node = node
        self.lineno = node.lineno
        self.function = function
        self.description = description
        self.change = change  # change(node, parents) makes it and returns a function undoing it

    def to_dict(self, module):
        return {
            "module": module,
            "file": "%s/%s.py" % (MODULE_UTILS, module),
            "line": self.lineno,
            "function": self.function,
            "mutation": self.description,
        }


def _functions_by_node(tree):
    """Map id(node) to the qualified name of the innermost def or class holding it."""
    names = {}

    def visit(node, name):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = node.name if name is None else "%s.%s" % (name, node.name)
        names[id(node)] = name
        for child in ast.iter_child_nodes(node):
            visit(child, name)

    visit(tree, None)
    return names


def _parents(tree):
    """Map id(node) to (parent, field, position in the field's list or None)."""
    parents = {}
    for node in ast.walk(tree):
        for field, value in ast.iter_fields(node):
            if isinstance(value, list):
                for position, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        parents[id(item)] = (node, field, position)
            elif isinstance(value, ast.AST):
                parents[id(value)] = (node, field, None)
    return parents


def _docstring_ids(tree):
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _compared_strings(node):
    """String constants among a comparison's operands, in tuples, lists and sets too."""
    found = []
    for operand in [node.left] + list(node.comparators):
        items = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
        for item in items:
            if isinstance(item, ast.Constant) and isinstance(item.value, str):
                found.append(item)
    return found


def _set_attr(name, make):
    def change(node, parents):
        old = getattr(node, name)
        setattr(node, name, make())
        return lambda: setattr(node, name, old)

    return change


def _set_op(position, op):
    def change(node, parents):
        old = node.ops[position]
        node.ops[position] = op()

        def undo():
            node.ops[position] = old

        return undo

    return change


def _replace(make):
    def change(node, parents):
        parent, field, position = parents[id(node)]
        if position is None:
            setattr(parent, field, make(node))
            return lambda: setattr(parent, field, node)
        getattr(parent, field)[position] = make(node)

        def undo():
            getattr(parent, field)[position] = node

        return undo

    return change


def find_mutants(tree):
    """Every mutant of ``tree``, in a stable order."""
    names = _functions_by_node(tree)
    docstrings = _docstring_ids(tree)
    mutants = []

    def add(node, description, change):
        mutants.append(Mutant(node, names.get(id(node)), description, change))

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for position, op in enumerate(node.ops):
                swap = COMPARE_SWAPS.get(type(op))
                if swap is not None:
                    add(
                        node,
                        "`%s` -> `%s`" % (SYMBOLS[type(op)], SYMBOLS[swap]),
                        _set_op(position, swap),
                    )
            for constant in _compared_strings(node):
                altered = constant.value + STRING_MARK
                add(
                    constant,
                    "compared string %r -> %r" % (constant.value, altered),
                    _set_attr("value", lambda altered=altered: altered),
                )
        elif isinstance(node, ast.Constant) and id(node) not in docstrings:
            value = node.value
            if isinstance(value, bool):
                add(
                    node,
                    "`%s` -> `%s`" % (value, not value),
                    _set_attr("value", lambda value=value: not value),
                )
            elif isinstance(value, (int, float)):
                for step in (1, -1):
                    add(
                        node,
                        "`%r` -> `%r`" % (value, value + step),
                        _set_attr("value", lambda value=value, step=step: value + step),
                    )
        elif isinstance(node, ast.BoolOp):
            other = ast.Or if isinstance(node.op, ast.And) else ast.And
            add(
                node,
                "`%s` -> `%s`" % (SYMBOLS[type(node.op)], SYMBOLS[other]),
                _set_attr("op", other),
            )
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            add(node, "`not` removed", _replace(lambda n: n.operand))
        elif isinstance(node, ast.Return) and node.value is not None:
            value = node.value
            if not (isinstance(value, ast.Constant) and value.value is None):
                add(
                    node,
                    "return value -> None",
                    _set_attr("value", lambda: ast.Constant(value=None)),
                )
        elif isinstance(node, (ast.Continue, ast.Break)):
            word = "continue" if isinstance(node, ast.Continue) else "break"
            add(node, "`%s` -> `pass`" % word, _replace(lambda n: ast.Pass()))
        elif isinstance(node, ast.If):
            if not (len(node.body) == 1 and isinstance(node.body[0], ast.Pass)):
                add(node, "`if` body -> `pass`", _set_attr("body", lambda: [ast.Pass()]))
    return mutants


def mutated_sources(tree, wanted=None):
    """(mutant, source) for each mutant of ``tree`` that makes a new, valid program (and that
    ``wanted(mutant)`` accepts)."""
    parents = _parents(tree)
    seen = {ast.unparse(tree)}
    for mutant in find_mutants(tree):
        if wanted is not None and not wanted(mutant):
            continue
        undo = mutant.change(mutant.node, parents)
        try:
            source = ast.unparse(tree)
        finally:
            undo()
        if source in seen:
            continue
        seen.add(source)
        try:
            compile(source, "<mutant>", "exec")
        except SyntaxError:
            continue
        yield mutant, source


# --- the copy and its tests -------------------------------------------------------------------


def collection_files():
    """The checkout's files as scripts/lib.sh lists them: tracked, plus untracked not ignored."""
    listing = subprocess.run(
        ["git", "-C", REPO_ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    return [
        p
        for p in listing.decode().split("\0")
        if p and os.path.lexists(os.path.join(REPO_ROOT, p)) and not p.startswith(".venv")
    ]


def make_copy(destination, revision=None):
    """The collection at ``destination/ansible_collections/dockerhost/storage``: this checkout's
    files, or those of a git ``revision``. Returns the collection's path."""
    root = os.path.join(destination, "ansible_collections", "dockerhost", "storage")
    os.makedirs(root)
    if revision:
        archive = subprocess.run(
            ["git", "-C", REPO_ROOT, "archive", "--format=tar", revision],
            check=True,
            stdout=subprocess.PIPE,
        ).stdout
        subprocess.run(["tar", "-x", "-C", root], input=archive, check=True)
        return root
    for relative in collection_files():
        source = os.path.join(REPO_ROOT, relative)
        target = os.path.join(root, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
        else:
            shutil.copy2(source, target)
    return root


def tests_for(module, root):
    """The unit test files (relative to ``root``) of ``module``: its own first, then the others
    that import it."""
    own = os.path.join(UNIT_TESTS, "plugins", "module_utils", "test%s.py" % module)
    found = [own] if os.path.exists(os.path.join(root, own)) else []
    pattern = re.compile(r"\b%s\b" % re.escape(module))
    for directory, dirs, files in os.walk(os.path.join(root, UNIT_TESTS)):
        dirs[:] = sorted(d for d in dirs if d not in ("fixtures", "__pycache__"))
        for name in sorted(files):
            if not (name.startswith("test_") and name.endswith(".py")):
                continue
            relative = os.path.relpath(os.path.join(directory, name), root)
            if relative in found:
                continue
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                if pattern.search(handle.read()):
                    found.append(relative)
    return found


# --- the children -----------------------------------------------------------------------------


def _transplant(old, new):
    """Make the function ``old`` run ``new``'s code; False when the two cannot share it."""
    try:
        old.__code__ = new.__code__
    except ValueError:  # another set of free variables
        return False
    old.__defaults__ = new.__defaults__
    old.__kwdefaults__ = new.__kwdefaults__
    return True


def _update_class(old, new):
    for key, value in vars(new).items():
        if key in ("__dict__", "__weakref__"):
            continue
        current = vars(old).get(key)
        functions = [
            (getattr(current, "__func__", None), getattr(value, "__func__", None)),
            (current, value),
        ]
        if isinstance(value, property) and isinstance(current, property):
            functions = [(current.fget, value.fget), (current.fset, value.fset)]
        done = False
        for was, now in functions:
            if isinstance(was, types.FunctionType) and isinstance(now, types.FunctionType):
                done = _transplant(was, now)
                break
        if not done:
            setattr(old, key, value)


def install(name, source, root):
    """Load ``source`` in place of the module ``name``, so that every reference to it, however
    it was taken, sees the mutant: its functions (and the methods of its classes) get the
    mutated code, keeping their identity; its other names get the new values, in the module
    and wherever a module of the copy at ``root`` (the collection, the tests) imported them."""
    module = sys.modules[name]
    namespace = vars(module)
    fresh = {key: namespace[key] for key in ("__name__", "__file__", "__package__", "__spec__")}
    fresh["__loader__"] = namespace.get("__loader__")
    fresh["__builtins__"] = namespace["__builtins__"]
    exec(compile(source, module.__file__, "exec", dont_inherit=True), fresh)
    replaced = {}
    for key, value in fresh.items():
        if key.startswith("__"):
            continue
        current = namespace.get(key)
        if isinstance(current, types.FunctionType) and isinstance(value, types.FunctionType):
            if _transplant(current, value):
                continue
        elif isinstance(current, type) and isinstance(value, type) and current is not value:
            if current.__module__ == name:
                _update_class(current, value)
                continue
        if current is not value:
            replaced[key] = (current, value)
            namespace[key] = value
    prefix = root + os.sep
    for other in list(sys.modules.values()):
        if other is module or not (getattr(other, "__file__", None) or "").startswith(prefix):
            continue
        names = vars(other)
        for key, (was, now) in replaced.items():
            if key in names and names[key] is was:
                names[key] = now


class Session:
    """The pytest plugin of one module's session: collect, then run the mutants in children."""

    def __init__(self, module, root, mutants, jobs, timeout, results, scratch):
        self.name = "%s.%s" % (PACKAGE, module)
        self.root = root
        self.mutants = mutants  # iterable of (payload, source)
        self.jobs = jobs
        self.timeout = timeout
        self.results = results  # results(payload, outcome, seconds)
        self.scratch = scratch
        self.failures = 0

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failures += 1

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        module = sys.modules.get(self.name)
        if session.testsfailed:
            self.results(None, "abort", "the tests could not be collected")
        elif module is None or not module.__file__.startswith(self.root + os.sep):
            self.results(None, "abort", "the tests do not import %s from the copy" % self.name)
        else:
            self._items = list(session.items)
            self._config = session.config
            self._run()
        return True

    def _run(self):
        slots = [None] * self.jobs
        run_jobs(slots, self.mutants, self.timeout, self.results, self._start, self._done)

    def _start(self, source):
        temporary = tempfile.mkdtemp(prefix="tmp-", dir=self.scratch)
        pid = os.fork()
        if pid:
            return pid, temporary
        code = 3
        try:
            os.setpgid(0, 0)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            factory = getattr(self._config, "_tmp_path_factory", None)
            if factory is not None:
                factory._basetemp = pathlib.Path(temporary)
            try:
                install(self.name, source, self.root)
            except Exception:  # noqa: BLE001 - a module that cannot be loaded is noticed
                os._exit(1)
            items = self._items
            for index, item in enumerate(items):
                following = items[index + 1] if index + 1 < len(items) else None
                item.config.hook.pytest_runtest_protocol(item=item, nextitem=following)
                if self.failures:
                    os._exit(1)
            code = 0
        except BaseException:  # noqa: B036 - whatever happens, the child must end here
            code = 3
        finally:
            os._exit(code)

    def _done(self, temporary):
        shutil.rmtree(temporary, ignore_errors=True)


def kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_jobs(slots, jobs, timeout, on_done, start, done):
    """Run ``jobs`` ((payload, source) pairs) ``len(slots)`` at a time: ``start(source)`` forks
    a child and returns ``(pid, state)``, ``done(state)`` cleans up after it; then
    ``on_done(payload, outcome, seconds)`` with outcome ``killed`` (exit status 1),
    ``survived`` (0), ``timeout`` or ``error`` (anything else)."""
    pending = iter(jobs)
    more = True
    busy = {}  # pid -> (payload, state, started)
    try:
        while more or busy:
            while more and len(busy) < len(slots):
                job = next(pending, None)
                if job is None:
                    more = False
                    break
                payload, source = job
                pid, state = start(source)
                busy[pid] = (payload, state, time.monotonic())
            if not busy:
                continue
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                now = time.monotonic()
                for pid, (payload, state, started) in list(busy.items()):
                    if now - started > timeout:
                        kill_group(pid)
                        os.waitpid(pid, 0)
                        del busy[pid]
                        done(state)
                        on_done(payload, "timeout", now - started)
                time.sleep(0.005)
                continue
            if pid not in busy:
                continue
            payload, state, started = busy.pop(pid)
            kill_group(pid)  # anything the tests left behind
            done(state)
            code = os.waitstatus_to_exitcode(status)
            outcome = {0: "survived", 1: "killed"}.get(code, "error")
            on_done(payload, outcome, time.monotonic() - started)
    finally:
        for pid, (_payload, state, _started) in busy.items():
            kill_group(pid)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            done(state)


# --- one module -------------------------------------------------------------------------------


def module_session(module, root, tests, mutants, jobs, timeout, scratch, out):
    """In a forked process: one pytest session over ``tests`` in the copy at ``root`` that runs
    ``mutants`` ((payload, source) pairs); results go to ``out`` as JSON lines."""
    pid = os.fork()
    if pid:
        return pid
    code = 3
    try:
        os.setpgid(0, 0)
        os.chdir(root)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        sys.dont_write_bytecode = True
        # The unit tests need no third-party pytest plugin; looking for them costs time.
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"

        def results(payload, outcome, seconds):
            out.write(json.dumps([payload, outcome, round(seconds, 3)]) + "\n")
            out.flush()

        plugin = Session(module, root, mutants, jobs, timeout, results, scratch)
        basetemp = "--basetemp=%s" % tempfile.mkdtemp(prefix="basetemp-", dir=scratch)
        pytest.main(PYTEST_ARGS + [basetemp] + list(tests), plugins=[plugin])
        code = 0
    except SystemExit as exc:
        out.write(json.dumps([None, "abort", str(exc)]) + "\n")
        out.flush()
        code = 2
    except BaseException as exc:  # noqa: B036
        out.write(json.dumps([None, "abort", repr(exc)]) + "\n")
        out.flush()
        code = 2
    finally:
        os._exit(code)


def run_module(module, root, args, report, scratch):
    path = os.path.join(root, MODULE_UTILS, module + ".py")
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=path)
    tests = tests_for(module, root)
    counts = dict.fromkeys(("mutants", "killed", "survived", "timeout", "error"), 0)

    def wanted(mutant):
        return not args.function or args.function in (mutant.function or "")

    generated = list(mutated_sources(tree, wanted))
    entries = [mutant.to_dict(module) for mutant, _source in generated]
    counts["mutants"] = len(generated)
    if not tests:
        # Nothing could kill them: each mutant survives, without a run.
        print("%s: %d mutants; no unit test imports it: all survive" % (module, len(generated)))
        counts["survived"] = len(generated)
        report["survivors"].extend(entries)
        return counts

    # First the unmutated module, as the children load it: every test must pass.
    jobs = [("baseline", ast.unparse(tree))]
    for index, (_mutant, source) in enumerate(generated):
        if args.previous is not None and not args.previous[_key(entries[index])]:
            counts["killed"] += 1  # killed in the earlier run, by tests that are still here
            continue
        jobs.append((index, source))
    print(
        "%s: %d mutants, %d to run; tests %s"
        % (module, len(generated), len(jobs) - 1, " ".join(os.path.basename(t) for t in tests)),
        flush=True,
    )
    reader, writer = os.pipe()
    out = os.fdopen(writer, "w")
    timeout = args.timeout
    pid = module_session(module, root, tests, jobs, args.jobs, timeout, scratch, out)
    out.close()
    done = 0
    try:
        with os.fdopen(reader) as lines:
            for line in lines:
                payload, outcome, seconds = json.loads(line)
                if outcome == "abort":
                    raise SystemExit("error: %s: %s" % (module, seconds))
                if payload == "baseline":
                    if outcome != "survived":
                        raise SystemExit(
                            "error: the tests of %s fail without a mutant (%s)" % (module, outcome)
                        )
                    continue
                counts[outcome] += 1
                done += 1
                if done % 100 == 0:
                    print("  %s: %d of %d run" % (module, done, len(jobs) - 1), flush=True)
                entry = entries[payload]
                if outcome != "killed":
                    report[
                        {"survived": "survivors", "timeout": "timeouts"}.get(outcome, "errors")
                    ].append(entry)
                    print(
                        "  %-8s %s:%d %s: %s"
                        % (
                            outcome,
                            entry["file"],
                            entry["line"],
                            entry["function"] or "<module>",
                            entry["mutation"],
                        ),
                        flush=True,
                    )
    finally:
        # An abort here (an error, ^C, a TERM) ends the session too, which ends its children.
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    if done != len(jobs) - 1:
        raise SystemExit(
            "error: %s: the session ended after %d of %d mutants" % (module, done, len(jobs) - 1)
        )
    return counts


# --- the run ----------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument(
        "--module",
        action="append",
        choices=TARGETS,
        help="mutate only this module (repeatable; default: all of %s)" % ", ".join(TARGETS),
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutants at once")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per mutant (default: 30)"
    )
    parser.add_argument(
        "--function", help="mutate only functions whose qualified name contains this"
    )
    parser.add_argument(
        "--at",
        metavar="REVISION",
        help="test the code and tests of this git revision instead of the work tree",
    )
    parser.add_argument(
        "--rerun",
        metavar="FILE",
        help="run only the mutants that survived (or timed out) in the report FILE of an earlier "
        "run of the same code (--list); the others count as killed, as they were then",
    )
    parser.add_argument(
        "--list",
        nargs="?",
        const=DEFAULT_REPORT,
        metavar="FILE",
        help="write the survivors and timeouts as JSON (default file: %s)"
        % os.path.relpath(DEFAULT_REPORT, REPO_ROOT),
    )
    args = parser.parse_args(argv)
    args.jobs = max(1, args.jobs)
    args.previous = None
    if args.rerun:
        with open(args.rerun, encoding="utf-8") as handle:
            earlier = json.load(handle)
        args.previous = collections.Counter(
            _key(entry)
            for kind in ("survivors", "timeouts", "errors")
            for entry in earlier.get(kind, ())
        )
    modules = args.module or list(TARGETS)
    # A terminated run cleans up after itself, as an interrupted one does.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    started = time.monotonic()
    scratch = tempfile.mkdtemp(prefix="dockerhost-mutation-")
    report = {"modules": {}, "survivors": [], "timeouts": [], "errors": []}
    try:
        root = make_copy(scratch, args.at)
        for module in modules:
            report["modules"][module] = run_module(module, root, args, report, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.monotonic() - started

    print()
    print(
        "%-16s %7s %7s %8s %7s %6s %9s"
        % ("module", "mutants", "killed", "survived", "timeout", "error", "survival")
    )
    totals = dict.fromkeys(("mutants", "killed", "survived", "timeout", "error"), 0)
    for module, counts in report["modules"].items():
        for key in totals:
            totals[key] += counts[key]
        print(_row(module, counts))
    if len(report["modules"]) > 1:
        print(_row("total", totals))
    for kind in ("survivors", "timeouts", "errors"):
        report[kind].sort(key=lambda e: (TARGETS.index(e["module"]), e["line"]))
    report["total"] = dict(totals, survival_percent=_rate(totals))
    report["seconds"] = round(elapsed, 1)
    report["jobs"] = args.jobs
    report["at"] = args.at
    report["rerun_of"] = args.rerun
    print("%.0f s with %d jobs" % (elapsed, args.jobs))
    if args.list:
        os.makedirs(os.path.dirname(os.path.abspath(args.list)), exist_ok=True)
        with open(args.list, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
            handle.write("\n")
        print("survivors written to %s" % os.path.relpath(os.path.abspath(args.list)))
    return 0


def _key(entry):
    return (entry["module"], entry["line"], entry["function"], entry["mutation"])


def _rate(counts):
    judged = counts["killed"] + counts["survived"] + counts["timeout"]
    return round(100.0 * counts["survived"] / judged, 1) if judged else None


def _row(name, counts):
    rate = _rate(counts)
    return "%-16s %7d %7d %8d %7d %6d %9s" % (
        name,
        counts["mutants"],
        counts["killed"],
        counts["survived"],
        counts["timeout"],
        counts["error"],
        "-" if rate is None else "%.1f%%" % rate,
    )


if __name__ == "__main__":
    sys.exit(main())
