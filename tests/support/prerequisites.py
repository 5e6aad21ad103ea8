"""The one way a test in this repository may skip.

Outside CI, a missing prerequisite (not root, an image not built, a browser not installed)
skips the test with its reason. Under CI (``CI=true``) the same call fails the test: CI has
every prerequisite installed by scripts/setup-host, so a skip there hides a broken set-up.
``tests/unit/test_skip_guard.py`` checks that no test skips any other way, and
``tests/support/junit_skips.py`` fails a CI run whose report still shows a skipped test.
"""

import os

import pytest


def in_ci():
    """True when the ``CI`` environment variable says this is a CI run."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def skip_or_fail(message):
    """Skip the calling test with ``message``, or fail it under CI."""
    if in_ci():
        pytest.fail(message + " (CI=true: prerequisites are not optional)", pytrace=False)
    pytest.skip(message)
