"""Under CI no test may skip: every skip goes through tests/support/prerequisites.py, which fails
instead, and tests/support/junit_skips.py fails a run whose report still shows one."""

import ast
import os
import subprocess
import sys
import textwrap

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(TESTS)
SUPPORT = os.path.join(TESTS, "support")
GUARD = os.path.join(SUPPORT, "prerequisites.py")
JUNIT_SKIPS = os.path.join(SUPPORT, "junit_skips.py")

# pytest.skip(...), pytest.importorskip(...), @pytest.mark.skip/skipif, unittest's skip*.
SKIPPING_NAMES = {"skip", "skipif", "importorskip", "skipTest", "skipIf", "skipUnless"}


def skipping_calls(path):
    """(line, text) of each place in a Python file that can skip a test by itself."""
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    found = []
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Attribute) and node.attr in SKIPPING_NAMES:
            found.append((node.lineno, ast.get_source_segment(source, node)))
        elif isinstance(node, ast.ImportFrom) and any(
            alias.name in SKIPPING_NAMES for alias in node.names
        ):
            found.append((node.lineno, ast.get_source_segment(source, node)))
    return found


def test_no_test_skips_except_through_the_guard():
    offenders = []
    for directory, subdirs, files in os.walk(TESTS):
        subdirs[:] = [name for name in subdirs if name not in ("fixtures", "output", "__pycache__")]
        for name in files:
            path = os.path.join(directory, name)
            if name.endswith(".py") and path != GUARD:
                offenders += [
                    "%s:%d: %s" % (os.path.relpath(path, REPO_ROOT), line, text)
                    for line, text in skipping_calls(path)
                ]
    assert offenders == [], "skip through prerequisites.skip_or_fail instead: " + "; ".join(
        offenders
    )


def test_the_scan_finds_a_bare_skip(tmp_path):
    # The check above must be able to fail: a marker and a call are both found.
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import pytest\n"
        "@pytest.mark.skipif(True, reason='x')\n"
        "def test_a():\n"
        "    pytest.skip('no')\n"
    )
    assert [found[0] for found in skipping_calls(str(sample))] == [2, 4]
    imported = tmp_path / "test_imported.py"
    imported.write_text("from pytest import skip\ndef test_a():\n    skip('no')\n")
    assert [found[0] for found in skipping_calls(str(imported))] == [1]


def _run_pytest(tmp_path, body, ci):
    test_file = tmp_path / "test_prerequisite.py"
    test_file.write_text(textwrap.dedent(body))
    report = tmp_path / "report.xml"
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    env["PYTHONPATH"] = SUPPORT
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rootdir",
         str(tmp_path), "--junitxml", str(report), str(test_file)],
        capture_output=True, text=True, env=env, cwd=str(tmp_path), check=False,
    )  # fmt: skip
    return result, report


GUARDED = """
    from prerequisites import skip_or_fail

    def test_needs_a_browser():
        skip_or_fail("chromium is not installed")
"""


@pytest.mark.parametrize(
    "ci, exit_status, outcome", [(False, 0, "1 skipped"), (True, 1, "1 failed")]
)
def test_guard_skips_outside_ci_and_fails_under_ci(tmp_path, ci, exit_status, outcome):
    result = _run_pytest(tmp_path, GUARDED, ci)[0]
    assert result.returncode == exit_status, result.stdout + result.stderr
    assert outcome in result.stdout
    if ci:
        assert (
            "chromium is not installed (CI=true: prerequisites are not optional)" in result.stdout
        )


def test_junit_skips_names_a_test_that_bypassed_the_guard(tmp_path):
    result, report = _run_pytest(
        tmp_path,
        """
        import pytest

        def test_runs():
            pass

        def test_bypasses_the_guard():
            pytest.skip("made-up reason")
        """,
        ci=True,
    )
    assert result.returncode == 0, result.stdout  # pytest itself lets the skip pass
    check = subprocess.run(
        [sys.executable, JUNIT_SKIPS, str(report), "integration"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 1
    assert "1 integration test(s) skipped under CI" in check.stderr
    assert "test_prerequisite::test_bypasses_the_guard: made-up reason" in check.stderr
    assert "test_runs" not in check.stderr


def test_junit_skips_passes_a_report_without_skips(tmp_path):
    report = _run_pytest(tmp_path, "def test_runs():\n    pass\n", ci=True)[1]
    check = subprocess.run(
        [sys.executable, JUNIT_SKIPS, str(report)], capture_output=True, text=True, check=False
    )
    assert (check.returncode, check.stderr) == (0, "")


def test_junit_skips_names_an_unreadable_report(tmp_path):
    missing = str(tmp_path / "missing.xml")
    check = subprocess.run(
        [sys.executable, JUNIT_SKIPS, missing], capture_output=True, text=True, check=False
    )
    assert check.returncode == 2
    assert "cannot read " + missing in check.stderr


def test_junit_failures_names_each_failed_test_and_why(tmp_path):
    result, report = _run_pytest(
        tmp_path,
        """
        def test_runs():
            pass

        def test_fails():
            assert 1 + 1 == 3, "arithmetic is off"
        """,
        ci=True,
    )
    assert result.returncode == 1, result.stdout
    listing = subprocess.run(
        [sys.executable, os.path.join(SUPPORT, "junit_failures.py"), str(report)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert listing.returncode == 0
    assert listing.stdout.startswith("FAILED test_prerequisite::test_fails: AssertionError")
    assert "arithmetic is off" in listing.stdout
    assert "test_runs" not in listing.stdout
