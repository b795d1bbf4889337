"""`make gpu-check` (benchmarks/gpu_check.py), tested without a GPU: its dry run end to end, and its parts.

The dry run is the real script on tiny shapes under Numba's CUDA simulator: it must pass every step and
write a report with every section and figure. The parts that a dry run does not reach (a step stopped at its
budget, the 8-minute limit, losses that disagree, a machine without a GPU) are checked directly.
"""

import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:  # `benchmarks` is a folder of the repository, not an installed package
    sys.path.insert(0, ROOT)

from benchmarks import gpu_check  # noqa: E402


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    report = tmp_path_factory.mktemp("gpu-check") / "report.md"
    env = {k: v for k, v in os.environ.items() if k not in ("MINIPSP_REAL_GPU", "OUT")}
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--dry-run", "--report", str(report)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=gpu_check.LIMIT_S + 120)
    return done, report


def test_dry_run_passes_every_step(dry_run):
    done, report = dry_run
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"gpu-check: report in {report}; every step passed"


def test_dry_run_report_has_every_section_and_figure(dry_run):
    _, report = dry_run
    text = report.read_text()
    for heading in ("# minipsp GPU check", "## Summary", "## Versions", "## Device", "## Install",
                    "## Tests (pytest -m gpu)", "## Training: GPU vs CPU losses", "## Benchmarks (benchmarks.gpu)"):
        assert f"\n{heading}" in "\n" + text, heading
    summary = text.split("## Summary")[1].split("## Versions")[0]
    assert summary.count("| passed") == 4
    assert "| numpy |" in text and "| numba |" in text and "| torch |" in text
    assert "passed: from the source tree (PYTHONPATH)" in text          # the fallback import really worked
    assert "source-tree/minipsp/kernels/__init__.py" in text
    tests = text.split("## Tests")[1].split("## Training")[0]
    assert "| tests | passed | failed | errors | skipped | seconds |" in tests and " skipped" in tests
    training = text.split("## Training")[1].split("## Benchmarks")[0]
    assert "3 of 3 iterations on both devices" in training and "They agree" in training
    assert all(f"\n| {it} | " in training for it in (1, 2, 3))
    benchmarks = text.split("## Benchmarks")[1]
    for op in ("conv2d", "batch_norm", "relu", "max_pool2d", "adaptive_avg_pool2d", "bilinear", "cross_entropy"):
        assert op in benchmarks, op
    assert "FAILED" not in benchmarks and "failed: none" in benchmarks
    logs = report.parent / "report-logs"
    assert sorted(os.listdir(logs)) == ["benchmarks-0.log", "install-0.log", "tests-0.log", "training-0.log",
                                        "training-1.log"]


@pytest.mark.parametrize("delay", [0.0, 0.5, 3.0])  # at the first report, in the install, later in the run
def test_sigterm_stops_the_step_and_still_writes_the_report(tmp_path, delay):
    report = tmp_path / "r.md"
    env = {k: v for k, v in os.environ.items() if k not in ("MINIPSP_REAL_GPU", "OUT")}
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.gpu_check", "--dry-run", "--report", str(report)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300      # the first report is written before the first step
        while not report.exists():             # (a fixed 30 s of polling sent the signal too early on a busy machine)
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "no first report in 300 s"
            time.sleep(0.05)
        time.sleep(delay)
        process.terminate()
        out, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, out
    assert "interrupted (this script was stopped)" in report.read_text()


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "find_gpu", lambda python: None)
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("gpu-check: no NVIDIA GPU on this machine")


def test_a_step_past_its_budget_is_stopped_and_reported(tmp_path):
    # The budget starts once the child has printed (a fixed 3 s from its start was not always enough for a
    # Python to start and print on a busy machine); it sleeps for 10 minutes, so < 120 s means it was stopped.
    started = tmp_path / "started"
    job = gpu_check.Job([sys.executable, "-c", "import pathlib, sys, time; print('started', flush=True); "
                         "pathlib.Path(sys.argv[1]).touch(); time.sleep(600)", str(started)])
    deadline = time.monotonic() + 120
    while not started.exists():
        assert job.process.poll() is None and time.monotonic() < deadline, "the child did not start"
        time.sleep(0.01)
    start = time.monotonic()
    result = job.wait(time.monotonic() + 1)
    assert time.monotonic() - start < 120
    assert result.timed_out and not result.ok and result.status().startswith("timed out after")
    assert result.returncode == -signal.SIGTERM                     # stopped by _stop's SIGTERM
    assert "started" in result.output


def test_a_command_that_cannot_start_is_a_status_not_a_crash():
    result = gpu_check.Job(["/nonexistent/python3", "-c", "pass"]).wait(time.monotonic() + 5)
    assert result.status() == "could not start" and "could not start" in result.output


def test_at_the_limit_every_step_is_skipped_and_the_report_still_written(tmp_path):
    report = tmp_path / "r.md"
    args = SimpleNamespace(dry_run=True, limit=0.0, report=str(report), python=sys.executable)
    assert gpu_check.Check(args).main() == 1
    text = report.read_text()
    assert text.count("skipped: the 0 s limit was reached") >= 4 and "## Benchmarks" in text


def test_losses_that_drift_apart_do_not_agree():
    cpu = {1: 2.0, 2: 1.9, 3: 1.8}
    table, agree, summary = gpu_check._compare_losses({1: 2.0, 2: 1.9, 3: 1.7}, cpu, 3)
    assert not agree and "do NOT agree" in summary and "| 3 | 1.700000 | 1.800000 |" in table
    assert gpu_check._compare_losses({1: 2.0, 2: 1.9}, cpu, 3)[1] is False        # an iteration missing
    assert gpu_check._compare_losses(dict(cpu), cpu, 3)[1] is True
    assert gpu_check._compare_losses({}, cpu, 3)[:2] == ("", False)


def test_test_counts_from_junit_and_from_a_stopped_verbose_run(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text('<testsuites><testsuite name="pytest" tests="4" failures="1" errors="0" skipped="1" time="2.5">'
                   '<testcase classname="tests.a" name="test_x"><failure message="boom&#10;more">t</failure>'
                   '</testcase></testsuite></testsuites>')
    counts, failures = gpu_check._junit_counts(str(xml))
    assert counts == dict(tests=4, failures=1, errors=0, skipped=1, passed=2, time="2.5")
    assert failures == [("tests.a::test_x", "boom")]
    output = ("tests/a.py::test_x PASSED [ 10%]\ntests/a.py::test_y FAILED [ 20%]\n"
              "tests/b.py::test_z[1] SKIPPED (needs a GPU) [ 30%]\n")
    counts, failures = gpu_check._verbose_counts(output)
    assert (counts["tests"], counts["passed"], counts["failures"], counts["skipped"]) == (3, 1, 1, 1)
    assert failures == [("tests/a.py::test_y", "failed")]


class FakeJob:
    """Stands in for gpu_check.Job on a GPU machine whose pip refuses to install and one of whose tests fails."""

    calls = []

    def __init__(self, command, env=None, cwd=ROOT):
        self.result = gpu_check.Result(list(command))
        self.env = dict(env or {})
        FakeJob.calls.append((list(command), self.env))

    def wait(self, until):
        command, result = self.result.command, self.result
        result.returncode, result.seconds = 0, 1.0
        if "pip" in command:
            result.returncode, result.output = 1, "error: externally-managed-environment"
        elif "minipsp.cli" in command:
            out, device = command[command.index("--out") + 1], command[command.index("--device") + 1]
            os.makedirs(out)
            with open(os.path.join(out, "log.jsonl"), "w") as f:
                for it in range(1, 31):
                    f.write(f'{{"iter": {it}, "loss": {3 - it / 20 + (1e-6 if device == "cuda" else 0)}}}\n')
        elif "pytest" in command:
            result.returncode = 1
            result.output = ("tests/gpu/test_devices.py::test_a PASSED [ 50%]\n"
                             "tests/ops/test_x.py::test_b FAILED [100%]\n")
        elif "benchmarks.gpu" in command:
            result.output = "conv2d 3x3 dilation 2   8x64x64x64 -> 64   1.000   1.500   1.50  1.0e-06\n"
        elif "import minipsp" in command[-1]:
            result.output = "/src/minipsp/__init__.py /src/kernels/__init__.py"
        else:  # the version probe
            result.output = '{"python": "3.12.3", "cupy-cuda13x": "14.2.0", "torch": "2.11.0"}'
        return result


def test_on_a_gpu_machine_the_steps_get_the_right_commands_and_pip_falls_back(monkeypatch, tmp_path):
    FakeJob.calls = []
    monkeypatch.setattr(gpu_check, "Job", FakeJob)
    monkeypatch.setattr(gpu_check, "_device_line", lambda dry: "nvidia-smi: NVIDIA H200, 580.65, 143771 MiB, 9.0")
    report = tmp_path / "r.md"
    args = SimpleNamespace(dry_run=False, limit=480.0, report=str(report), python="python3")
    assert gpu_check.Check(args).main() == 1                          # one test failed
    commands = {" ".join(command): env for command, env in FakeJob.calls}
    pip = next(c for c in commands if " pip " in c)
    assert pip.startswith("python3 -m pip install --no-deps --no-build-isolation") and pip.endswith("-e .")
    pytest_command = next(c for c in commands if " pytest " in c)
    env = commands[pytest_command]
    assert env["MINIPSP_REAL_GPU"] == "1" and "NUMBA_ENABLE_CUDASIM" not in env
    assert env["PYTHONSAFEPATH"] == "1" and "source-tree" in env["PYTHONPATH"]   # pip failed: the source tree
    assert "--continue-on-collection-errors" in pytest_command and "tests/gpu" not in pytest_command
    trains = [c for c in commands if "minipsp.cli train" in c]
    assert sorted(c.split("--device ")[1].split()[0] for c in trains) == ["cpu", "cuda"]
    assert all("--iters 30 " in c and "--layers 18 " in c for c in trains)
    assert any(c == "python3 -m benchmarks.gpu --repeats 10" for c in commands)
    text = report.read_text()
    assert "| Install | passed: from the source tree (PYTHONPATH) |" in text
    assert "| Tests (pytest -m gpu) | failed (exit 1) |" in text and "`tests/ops/test_x.py::test_b`: failed" in text
    assert "| 2 | 1 | 1 | 0 | 0 | ? |" in text                        # counted from pytest -v's lines
    assert "30 of 30 iterations on both devices" in text and "They agree" in text
    assert "| Benchmarks (benchmarks.gpu) | passed |" in text and "8x64x64x64 -> 64" in text
    assert "NVIDIA H200" in text and "| cupy-cuda13x | 14.2.0 |" in text
