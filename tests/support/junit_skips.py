"""Fail when a pytest JUnit XML report holds a skipped test, naming each one.

    python tests/support/junit_skips.py REPORT.xml [TIER]

Under CI every prerequisite is installed, so a skip means a test did not run that should have:
tests/support/prerequisites.py turns the skips it knows into failures, and this catches any
that bypassed it (a marker, a plugin, a test that calls pytest.skip itself). Exit status 1 when
a test was skipped, 2 when the report cannot be read, 0 otherwise.
"""

import sys
import xml.etree.ElementTree as ET


def skipped_tests(report_path):
    """(name, reason) of every skipped test case in the JUnit XML report at ``report_path``."""
    skipped = []
    for case in ET.parse(report_path).getroot().iter("testcase"):
        marker = case.find("skipped")
        if marker is None:
            continue
        name = "%s::%s" % (case.get("classname", ""), case.get("name", ""))
        skipped.append((name, marker.get("message", "").strip()))
    return skipped


def main(argv):
    if len(argv) not in (2, 3):
        sys.stderr.write("usage: junit-skips REPORT.xml [TIER]\n")
        return 2
    report_path = argv[1]
    tier = argv[2] if len(argv) == 3 else "tests"
    try:
        skipped = skipped_tests(report_path)
    except (OSError, ET.ParseError) as error:
        sys.stderr.write("junit-skips: cannot read %s: %s\n" % (report_path, error))
        return 2
    if not skipped:
        return 0
    sys.stderr.write(
        "error: %d %s test(s) skipped under CI, where every prerequisite must be in place:\n"
        % (len(skipped), tier)
    )
    for name, reason in skipped:
        sys.stderr.write("  SKIPPED %s: %s\n" % (name, reason or "(no reason given)"))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
