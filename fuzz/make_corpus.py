"""Write the seed corpus of fuzz/fuzz_load.py: real files (torch.save in both formats, minipsp.save) and
the crafted ones of tests/models/hostile_checkpoints.py, as whole files and, for zips, as the
(storages, data.pkl) inputs that the harness builds zips from. Needs torch (the test extra).

    python fuzz/make_corpus.py fuzz/corpus
"""

import hashlib
import io
import os
import sys
import zipfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "fuzz"), os.path.join(ROOT, "tests", "models")]

import hostile_checkpoints  # noqa: E402
from fuzz_load import MAX_STORAGES, encode_input  # noqa: E402

MAX_SEED_BYTES = 16384  # larger seeds slow every mutation down


def zip_inputs(data):
    """The harness inputs (modes 1 and 2) for a torch or minipsp zip, if it is one they can express."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
        if "minipsp/data.pkl" in names:
            mode, pickle_name, blob_name = 2, "minipsp/data.pkl", "minipsp/arrays/{}.npy"
        else:
            pickle_name = next(n for n in names if n.endswith("/data.pkl"))
            mode, blob_name = 1, pickle_name[: -len("data.pkl")] + "data/{}"
        count = 0
        while blob_name.format(count) in names:
            count += 1
        entries = [pickle_name] + [blob_name.format(i) for i in range(count)]
        if count > MAX_STORAGES or any(archive.getinfo(name).file_size > MAX_SEED_BYTES for name in entries):
            return []
        pickle_bytes, *blobs = [archive.read(name) for name in entries]
        return [encode_input(mode, pickle_bytes, blobs)]
    except (zipfile.BadZipFile, zlib.error, StopIteration, KeyError, ValueError, RuntimeError, NotImplementedError,
            EOFError):  # (a damaged crafted zip: its whole-file seed is enough)
        return []


def main(folder):
    os.makedirs(folder, exist_ok=True)
    files = {**hostile_checkpoints.valid_files(), **hostile_checkpoints.hostile_files()}
    seeds = set()
    for data in files.values():
        for seed in [encode_input(0, whole=data), *zip_inputs(data)]:
            if len(seed) <= MAX_SEED_BYTES:
                seeds.add(seed)
    for seed in seeds:
        with open(os.path.join(folder, hashlib.sha1(seed).hexdigest()), "wb") as file:
            file.write(seed)
    print(f"{len(seeds)} seeds in {folder}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "fuzz", "corpus"))
