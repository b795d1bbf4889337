"""minipsp.allocator: freed large buffers stay in the process (no page faults when they come back).

Measured as page faults (getrusage's ru_minflt), not time: a 64 MB array made, written and dropped
five times faults its pages in again each time under glibc's defaults (544 faults here: NumPy asks
for huge pages on large arrays, so a fault may bring 2 MB, each zeroed by the kernel), and not at
all after the first time with minipsp's settings."""

import json
import os
import subprocess
import sys

import pytest

from minipsp import allocator

COUNT_FAULTS = """
import json, resource, numpy as np
import minipsp
faults = []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.empty(16 << 20, dtype=np.float32)
    a.fill(1.0)
    del a
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"faults": faults, "configured": minipsp.allocator.configure()}))
"""

glibc_linux = pytest.mark.skipif(not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
                                 reason="mallopt is glibc's")


def run(mode):
    env = dict(os.environ, MINIPSP_MALLOC=mode)
    out = subprocess.run([sys.executable, "-c", COUNT_FAULTS], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@glibc_linux
def test_keep_reuses_freed_buffers():
    result = run("keep")
    assert result["configured"] is True
    assert result["faults"][0] > 20                 # the first time the pages come in (the test can see faults)
    assert max(result["faults"][1:]) < 10           # then they stay mapped: nothing to fault in again


@glibc_linux
def test_system_leaves_malloc_alone():
    result = run("system")
    assert result["configured"] is False
    assert min(result["faults"][1:]) > 20           # glibc maps a fresh block each time (>= 32 huge pages)


def test_bad_value_is_named(monkeypatch):
    monkeypatch.setenv("MINIPSP_MALLOC", "jemalloc")
    with pytest.raises(ValueError, match="MINIPSP_MALLOC must be one of .*'jemalloc'"):
        allocator.mode()
