"""Coverage-guided fuzzing of minipsp.load with atheris (libFuzzer for Python).

    python fuzz/make_corpus.py fuzz/corpus          # seeds: real torch zip, legacy and minipsp files, crafted ones
    python fuzz/fuzz_load.py fuzz/corpus -max_total_time=600 -artifact_prefix=fuzz/findings/

(`make fuzz` does both.) An input is one of three things, chosen by its first byte, so that mutations
reach the pickle and the storages inside a zip without being stopped by the zip's CRCs:
  0: the bytes of a whole file;
  1: a torch zip made of it: a count k (<= 4), k storages (2-byte length, bytes), the rest data.pkl;
  2: a minipsp zip made the same way, the k blobs being minipsp/arrays/<i>.npy.
Only minipsp.CheckpointError is expected. Any other exception, a crash, a hang (-timeout) or running out
of memory (-rss_limit_mb) is a finding: libFuzzer stops and writes the input to the artifact prefix.
With MINIPSP_FUZZ_STATS=path, the outcomes so far (loaded, or the exception's type) are written there
as JSON every 10000 inputs.
"""

import collections
import inspect
import io
import json
import os
import pickle
import sys
import zipfile

import atheris

import minipsp
import minipsp.serialization
from minipsp import CheckpointError

MODES = 3
MAX_STORAGES = 4


def build_file(data: bytes) -> bytes:
    """The checkpoint file an input stands for (see the module's docstring)."""
    if not data:
        return b""
    mode, rest = data[0] % MODES, data[1:]
    if mode == 0:
        return rest
    count, rest = (rest[0] % (MAX_STORAGES + 1), rest[1:]) if rest else (0, b"")
    blobs = []
    for _ in range(count):
        length = int.from_bytes(rest[:2], "little")
        blobs.append(rest[2:2 + length])
        rest = rest[2 + length:]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if mode == 1:
            archive.writestr("archive/data.pkl", rest)
            archive.writestr("archive/byteorder", "little")
            for key, blob in enumerate(blobs):
                archive.writestr(f"archive/data/{key}", blob)
        else:
            archive.writestr(minipsp.serialization.FORMAT_ENTRY, minipsp.serialization.FORMAT_TAG)
            archive.writestr("minipsp/data.pkl", rest)
            for key, blob in enumerate(blobs):
                archive.writestr(f"minipsp/arrays/{key}.npy", blob)
    return buffer.getvalue()


def encode_input(mode: int, pickle_bytes: bytes = b"", blobs=(), whole: bytes = b"") -> bytes:
    """The inverse of build_file, for the seed corpus."""
    if mode == 0:
        return bytes([0]) + whole
    parts = [bytes([mode, len(blobs)])]
    for blob in blobs:
        parts += [len(blob).to_bytes(2, "little"), blob]
    return b"".join(parts + [pickle_bytes])


OUTCOMES = collections.Counter()
STATS_PATH = os.environ.get("MINIPSP_FUZZ_STATS")


def test_one_input(data: bytes) -> None:
    try:
        minipsp.load(io.BytesIO(build_file(data)))
        OUTCOMES["loaded"] += 1
    except CheckpointError as exc:
        OUTCOMES[type(exc).__name__] += 1
    if STATS_PATH and sum(OUTCOMES.values()) % 10000 == 0:
        with open(STATS_PATH, "w") as file:
            json.dump(OUTCOMES, file)


def instrument(modules):
    """Coverage for the reader and what it drives (pickle's pure-Python unpickler, zipfile)."""
    for module in modules:
        for value in vars(module).values():
            members = vars(value).values() if inspect.isclass(value) else [value]
            for member in members:
                function = getattr(member, "__func__", member)  # staticmethods and classmethods
                if inspect.isfunction(function) and function.__module__ == module.__name__:
                    atheris.instrument_func(function)


def main():
    instrument([minipsp.serialization, pickle, zipfile])
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
