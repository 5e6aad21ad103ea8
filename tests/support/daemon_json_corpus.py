"""The corpus of daemon.json files that must be refused: tests/unit/fixtures/daemon_json/bad/.

One file per case. The unit tier runs every file through the parsers, the integration tier
through the daemon_config module (and, for the files dockerd 20.10 refuses too, through a
private dockerd). A file added to the directory without an entry in ``CASES`` fails the unit
tier, so no file is left out.

The file that is not UTF-8 and the one that starts with a byte-order mark end in ``.bin``:
ansible-test's sanity tests read every ``.json`` file as text and would report both.
"""

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BAD_DIR = os.path.join(REPO_ROOT, "tests", "unit", "fixtures", "daemon_json", "bad")


class Case:
    """What a bad file must be refused with.

    ``phrases``: what the refusal must say besides the file's path; ``read_refuses``: the
    reading parser (``parse_daemon_json``, for the read-only modules) refuses it too (an
    empty file reads as ``{}`` and a repeated key takes its last value, as in dockerd);
    ``dockerd_refuses``: dockerd 20.10 refuses to start on it ("unable to configure the Docker
    daemon with file ..."). dockerd reads the others: it keeps the last of repeated keys, and
    reads invalid UTF-8 and a lone surrogate escape as U+FFFD, so the file would not say what
    dockerd does; the module refuses them so that a rewrite never changes what it was not
    asked to change.
    """

    def __init__(self, phrases, read_refuses=True, dockerd_refuses=True):
        self.phrases = phrases
        self.read_refuses = read_refuses
        self.dockerd_refuses = dockerd_refuses


CASES = {
    "blank.json": Case(["is empty"], read_refuses=False),
    "byte-order-mark.bin": Case(["starts with a UTF-8 byte-order mark"]),
    "comment.json": Case(["is not valid JSON at line 2 column 3", "JSON has no comments"]),
    "control-character.json": Case(["is not valid JSON at line 1", "Invalid control character"]),
    "deep-nesting.json": Case(["nests arrays and objects more than 100 levels deep"]),
    "duplicate-key.json": Case(
        ["gives the key 'storage-driver' more than once"],
        read_refuses=False,
        dockerd_refuses=False,
    ),
    "duplicate-nested-key.json": Case(
        ["gives the key 'max-size' more than once"], read_refuses=False, dockerd_refuses=False
    ),
    "empty.json": Case(["is empty"], read_refuses=False),
    "infinity.json": Case(["holds Infinity at line 2 column 31", "not a JSON value"]),
    "integer-out-of-range.json": Case(
        ["holds the number 10000000000000000000... at line 2", "beyond the range"]
    ),
    "invalid-utf8.bin": Case(["is not UTF-8 text (byte 19)"], dockerd_refuses=False),
    "lone-surrogate.json": Case(
        ["holds the escape \\ud800 at line 1 column 19", "U+FFFD"], dockerd_refuses=False
    ),
    "nan.json": Case(["holds NaN at line 2 column 31", "not a JSON value"]),
    "negative-infinity.json": Case(["holds -Infinity at line 2 column 23"]),
    "number-out-of-range.json": Case(
        ["holds the number 1e400 at line 2 column 31", "beyond the range dockerd reads"]
    ),
    "single-quotes.json": Case(["is not valid JSON at line 1 column 2"]),
    "top-level-array.json": Case(["must hold a JSON object", "found a JSON array"]),
    "top-level-string.json": Case(["must hold a JSON object", "found a JSON string"]),
    "trailing-comma.json": Case(
        ["is not valid JSON at line 3 column 1", "remove the comma before the closing bracket"]
    ),
    "truncated.json": Case(["is not valid JSON at line 4"]),
}


def bad_files():
    """The names of the files in the corpus directory, sorted."""
    return sorted(os.listdir(BAD_DIR))


def bad_file(name):
    """The path of a corpus file."""
    return os.path.join(BAD_DIR, name)


def read_bad_file(name):
    with open(bad_file(name), "rb") as handle:
        return handle.read()
