"""Checkpoints the fuzzer (fuzz/fuzz_load.py) once crashed minipsp.load with, kept in tests/fuzz/found/:
each must now be refused with a CheckpointError that names the damage. No atheris needed.

2026-12-02, seek-overflow: a zip entry whose local-header offset is past what seek() accepts; zipfile
raised OverflowError (reading from a BytesIO), which escaped load()."""

import io
import os

import pytest

import minipsp

FOUND = os.path.join(os.path.dirname(os.path.abspath(__file__)), "found")


@pytest.mark.parametrize("name", sorted(os.listdir(FOUND)))
@pytest.mark.parametrize("source", ["path", "BytesIO"])      # seek() on a BytesIO overflowed; on a file, not
def test_found_inputs_are_refused_cleanly(name, source):
    path = os.path.join(FOUND, name)
    if source == "BytesIO":
        with open(path, "rb") as file:
            path = io.BytesIO(file.read())
    with pytest.raises(minipsp.CheckpointError, match="damaged or truncated"):
        minipsp.load(path)
