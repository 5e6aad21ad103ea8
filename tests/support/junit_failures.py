"""Name the failed tests of a pytest JUnit XML report, one per line, with the first line of why.

    python tests/support/junit_failures.py REPORT.xml

scripts/test prints these under its summary, so the end of a long run's log says which test
failed without scrolling back through the tier's output. Exit status 0 whether or not a test
failed (the tier's own status says that), 2 when the report cannot be read.
"""

import sys
import xml.etree.ElementTree as ET


def failed_tests(report_path):
    """(name, first line of the message) of every failed or errored case in the report."""
    failed = []
    for case in ET.parse(report_path).getroot().iter("testcase"):
        for kind in ("failure", "error"):
            marker = case.find(kind)
            if marker is None:
                continue
            name = "%s::%s" % (case.get("classname", ""), case.get("name", ""))
            message = (marker.get("message") or marker.text or "").strip().splitlines()
            failed.append((name, message[0] if message else "(no message)"))
            break
    return failed


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: junit-failures REPORT.xml\n")
        return 2
    try:
        failed = failed_tests(argv[1])
    except (OSError, ET.ParseError) as error:
        sys.stderr.write("junit-failures: cannot read %s: %s\n" % (argv[1], error))
        return 2
    for name, message in failed:
        sys.stdout.write("FAILED %s: %s\n" % (name, message[:200]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
