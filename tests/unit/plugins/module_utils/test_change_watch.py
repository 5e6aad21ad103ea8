"""Reading fanotify's event records: which directories they name, and when they cannot be
trusted to name every change (an overflow of the queue, an event without a directory)."""

import os
import struct

from ansible_collections.dockerhost.storage.plugins.module_utils._change_watch import (
    FAN_ATTRIB,
    FAN_CREATE,
    FAN_MODIFY,
    FAN_ONDIR,
    FAN_Q_OVERFLOW,
    INFO_DFID_NAME,
    parse_events,
)

INFO_FID = 1


def event(mask, records=()):
    """One event as the kernel writes it: metadata, then its information records."""
    body = b"".join(records)
    length = 24 + len(body)
    return struct.pack("=IBBHQii", length, 3, 0, 24, mask, -1, 1234) + body


def directory_record(handle, name=b"entry", info_type=INFO_DFID_NAME):
    """A record naming a directory by ``handle`` (the file_handle's bytes) and a name in it."""
    file_handle = struct.pack("=Ii", len(handle), 1) + handle
    payload = b"\0" * 8 + file_handle + name + b"\0"
    padded = payload + b"\0" * (-(4 + len(payload)) % 4)
    return struct.pack("=BBH", info_type, 0, 4 + len(padded)) + padded


def handle(raw):
    return struct.pack("=Ii", len(raw), 1) + raw


def test_each_event_names_its_directory_and_entry():
    first, second = b"\x01" * 8, b"\x02" * 8
    buffer = (
        event(FAN_MODIFY, [directory_record(first)])
        + event(FAN_CREATE | FAN_ONDIR, [directory_record(second, b"sub")])
        + event(FAN_MODIFY, [directory_record(first, b"other")])
        + event(FAN_ATTRIB | FAN_ONDIR, [directory_record(second, b".")])
    )
    changes = {}
    assert parse_events(buffer, changes) is True
    # An event on the directory itself ("." ) names no entry; the directory is there.
    assert changes == {handle(first): {"entry", "other"}, handle(second): {"sub"}}


def test_names_that_are_not_utf8_are_kept_as_the_filesystem_has_them():
    changes = {}
    parse_events(event(FAN_MODIFY, [directory_record(b"\x05" * 8, b"caf\xe9")]), changes)
    assert changes == {handle(b"\x05" * 8): {os.fsdecode(b"caf\xe9")}}


def test_an_overflow_means_changes_were_lost():
    changes = {}
    assert parse_events(event(FAN_Q_OVERFLOW), changes) is False
    assert changes == {}


def test_an_event_that_names_no_directory_cannot_be_placed():
    buffer = event(FAN_MODIFY, [directory_record(b"\x03" * 8, info_type=INFO_FID)])
    assert parse_events(buffer, {}) is False


def test_a_record_of_another_layout_version_is_not_guessed_at():
    buffer = bytearray(event(FAN_MODIFY, [directory_record(b"\x04" * 8)]))
    buffer[4] = 2
    assert parse_events(bytes(buffer), {}) is False
