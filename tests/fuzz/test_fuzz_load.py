"""A bounded coverage-guided fuzz of minipsp.load (fuzz/fuzz_load.py, atheris), when atheris is installed.

It runs for MINIPSP_FUZZ_SECONDS (default 45) from the seed corpus of fuzz/make_corpus.py. Any
exception but minipsp.CheckpointError, a crash, a hang or running out of memory fails it, with the
input that did it left in the test's tmp_path (`make fuzz` runs longer).
"""

import os
import subprocess
import sys

import pytest

pytest.importorskip("atheris", reason="the fuzz extra (pip install -e '.[fuzz]') is not installed")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECONDS = int(os.environ.get("MINIPSP_FUZZ_SECONDS", "45"))


@pytest.mark.fuzz
def test_fuzzing_load_finds_nothing(tmp_path):
    corpus = tmp_path / "corpus"
    subprocess.run([sys.executable, os.path.join(ROOT, "fuzz", "make_corpus.py"), str(corpus)], check=True,
                   capture_output=True)
    command = [sys.executable, os.path.join(ROOT, "fuzz", "fuzz_load.py"), str(corpus), f"-max_total_time={SECONDS}",
               "-rss_limit_mb=2048", "-timeout=30", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=SECONDS + 300)
    findings = sorted(p.name for p in tmp_path.iterdir() if p.name.split("-")[0] in ("crash", "timeout", "oom"))
    assert result.returncode == 0 and not findings, f"{findings}\n{result.stderr[-4000:]}"
    assert "stat::number_of_executed_units" in result.stderr  # it did run
