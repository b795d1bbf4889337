"""`make gpu-check`: what a lent GPU should run, in one call, written up as one Markdown report.

    python3 -m benchmarks.gpu_check             # on the GPU machine; the report goes to $OUT if that is set,
                                                # else to benchmarks/results/gpu-check-<UTC time>.md
    python3 -m benchmarks.gpu_check --dry-run   # the same steps, tiny, under Numba's CUDA simulator (for CI)

Made for a machine with no network on which CuPy, numba-cuda, a CUDA build of torch, pytest and hypothesis
are already installed in python3 (no venv: `make gpu-check` runs `$(PYTHON)`, python3 by default). Each step
is a subprocess with its own time budget, and all of them fit in --limit (8 minutes): a step still running
at its budget or at the limit is stopped (SIGTERM, then SIGKILL) and reported as timed out.

1. install     python3 -m pip install --no-deps --no-build-isolation --no-index -e .  (--no-index: there is
               nothing to download, so pip must not try). When that fails (no pip, a read-only or "externally
               managed" Python), minipsp runs from the source tree instead: a temporary folder where minipsp/
               and kernels/ (as minipsp/kernels, what setup.py's package_dir does) are linked goes first on
               PYTHONPATH, with PYTHONSAFEPATH=1 so that the repository's own minipsp/ does not shadow it.
2. tests       MINIPSP_REAL_GPU=1 python3 -m pytest -m gpu: the kernels and a small PSPNet on the device.
3. training    `minipsp train`: PSPNet-18 for 30 iterations on SyntheticScenes, on the GPU and on the CPU at
               the same time, with the same seed and batches. The losses should agree to float32 rounding at
               the first iteration and drift apart only slowly as training amplifies it.
4. benchmarks  python3 -m benchmarks.gpu: each op and a PSPNet-50 training step, minipsp vs torch + cuDNN.

The report gives the versions, the device, each step's status and time, the test counts and failures, every
figure, and the tail of each step's output (the whole outputs are in a folder next to it). It is rewritten
after every step, so a run stopped from outside still leaves what finished. Exit status 0 when every step
passed, 1 otherwise; on a machine without a GPU it says so in one line and exits 0.

--dry-run (CI has no GPU) runs the same steps with the same code, small: no pip install (minipsp runs through
the source-tree fallback, which that exercises); pytest -m gpu on tests/gpu without MINIPSP_REAL_GPU, so the
gpu tests are collected and skipped; benchmarks.gpu --simulate, one tiny case per op with the cuda kernels
under the simulator; and 3 iterations of a width-4 PSPNet-18 on 17-pixel crops whose "GPU" side runs the NumPy
reference kernels (the simulator needs minutes per PSPNet iteration). It tests this script and its report,
not the CUDA kernels: tests/ops and tests/gpu run those under the simulator.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT_S = 480             # issue 11: the whole check stops itself at 8 minutes
REPORT_RESERVE_S = 25     # kept back from the steps: stopping an overrunning step (5 s a process), the report
TAIL_CHARS = 3000         # of each step's output in the report

# Seconds each step may take at most (the limit may cut the later ones shorter). The two training runs
# share one budget: they run at the same time.
BUDGETS = {"install": 60, "tests": 150, "training": 120, "benchmarks": 120}
# The dry run's are the same: its steps take 1-7 s on a quiet machine, but CI's shared 2-core machines can be
# ten times slower at a moment, and a budget there only has to stop a hang (the dry run is CI's test of this
# script: a step stopped at 60 s failed it, see tests/gpu/test_gpu_check.py).
DRY_BUDGETS = dict(BUDGETS)

# PSPNet-18 on SyntheticScenes: the real check's training run, and the dry run's.
TRAINING = dict(iters=30, width=64, crop=97, batch=4, images=64)
DRY_TRAINING = dict(iters=3, width=4, crop=17, batch=2, images=4)
# Losses of the GPU and CPU runs agree when they are within these relative differences.
FIRST_LOSS_RTOL, ALL_LOSSES_RTOL = 1e-4, 1e-2

VERSIONS_SCRIPT = r"""
import importlib.metadata as md, json, platform, sys
out = {"python": sys.version.split()[0] + " (" + sys.executable + ")", "platform": platform.platform()}
for name in ("numpy", "numba", "numba-cuda", "cupy-cuda13x", "cupy-cuda12x", "cupy", "torch", "pytest",
             "hypothesis", "minipsp"):
    try:
        out[name] = md.version(name)
    except Exception:
        pass
try:
    import cupy
    out["cupy CUDA runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    out["cupy CUDA driver"] = cupy.cuda.runtime.driverGetVersion()
    props = cupy.cuda.runtime.getDeviceProperties(0)
    out["cupy device 0"] = (f"{props['name'].decode()}, compute capability {props['major']}.{props['minor']}, "
                            f"{props['totalGlobalMem'] / 2**30:.0f} GiB")
except Exception as exc:
    out["cupy device 0"] = f"none ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
try:
    import torch
    out["torch CUDA"] = f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, " \
                        f"available: {torch.cuda.is_available()}"
    if torch.cuda.is_available():
        out["torch device 0"] = torch.cuda.get_device_name(0)
except Exception as exc:
    out["torch CUDA"] = f"unknown ({type(exc).__name__})"
try:
    from numba import config
    out["numba CUDA simulator"] = bool(config.ENABLE_CUDASIM)
except Exception:
    pass
print(json.dumps(out))
"""


@dataclass
class Result:
    """What one subprocess did: exit status (None if it could not start), whether it was stopped, its output."""
    command: list
    returncode: int | None = None
    timed_out: bool = False
    seconds: float = 0.0
    output: str = ""

    @property
    def ok(self):
        return self.returncode == 0 and not self.timed_out

    def status(self):
        if self.timed_out:
            return f"timed out after {self.seconds:.0f} s"
        if self.returncode is None:
            return "could not start"
        return "passed" if self.returncode == 0 else f"failed (exit {self.returncode})"


class Job:
    """A subprocess writing its stdout and stderr to a temporary file, in its own process group."""

    def __init__(self, command, env=None, cwd=ROOT):
        self.result = Result(list(command))
        self.start = time.monotonic()
        self.log = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True)
        except OSError as exc:
            self.process = None
            self.result.output = f"could not start {command[0]}: {exc}"

    def wait(self, until):
        """Wait until the monotonic time `until` at most, stopping the process then; return its Result."""
        if self.process is not None:
            try:
                self.result.returncode = self.process.wait(timeout=max(0.1, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.result.timed_out = True
                self.result.returncode = _stop(self.process)
            except BaseException:  # Ctrl-C or SIGTERM on this script: the step's processes go too
                _stop(self.process)
                raise
            self.log.seek(0)
            self.result.output = self.log.read().decode(errors="replace")
        self.log.close()
        self.result.seconds = time.monotonic() - self.start
        return self.result


def _stop_quietly(job):
    if job.process is not None and job.process.poll() is None:
        _stop(job.process)


def _stop(process):
    """SIGTERM to the whole process group (pytest's and torch's children too), SIGKILL 3 s later."""
    for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 2)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            return process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    return None


@dataclass
class Step:
    """One section of the report: a status line, notes, figures (Markdown) and the output's tail."""
    title: str
    status: str = "not run"
    seconds: float = 0.0
    notes: list = field(default_factory=list)
    body: str = ""
    results: list = field(default_factory=list)
    ok: bool = False
    output_in_body: bool = False  # the body already shows the whole output (benchmarks): no tail then


class Check:
    """The four steps, run in order within the limit, and the report that describes them."""

    def __init__(self, args, started=None):
        self.args = args
        self.dry = args.dry_run
        self.python = args.python
        self.started = time.monotonic() if started is None else started  # the limit counts from here
        self.deadline = self.started + args.limit
        self.budgets = DRY_BUDGETS if self.dry else BUDGETS
        self.when = datetime.datetime.now(datetime.timezone.utc)
        self.report_path = args.report or _default_report_path(self.when)
        self.logs_dir = os.path.splitext(self.report_path)[0] + "-logs"
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.dry:
            self.env["NUMBA_ENABLE_CUDASIM"] = "1"
            self.env.pop("MINIPSP_REAL_GPU", None)
        else:
            self.env.pop("NUMBA_ENABLE_CUDASIM", None)
        self.work = tempfile.mkdtemp(prefix="minipsp-gpu-check-")
        self.versions, self.device = {}, ""
        self.revision = _revision()  # once: git is slow on a busy machine, and a report must not wait on it
        self.steps = {name: Step(title) for name, title in (
            ("install", "Install"), ("tests", "Tests (pytest -m gpu)"), ("training", "Training: GPU vs CPU losses"),
            ("benchmarks", "Benchmarks (benchmarks.gpu)"))}

    # -- time ---------------------------------------------------------------------------------------
    def until(self, step):
        """The monotonic time at which `step` must stop: its budget, or the limit minus the report's reserve."""
        return min(time.monotonic() + self.budgets[step], self.deadline - REPORT_RESERVE_S)

    def time_left(self):
        return self.deadline - REPORT_RESERVE_S - time.monotonic()

    def run(self, step, command, env=None, cwd=ROOT):
        result = Job(command, env or self.env, cwd).wait(self.until(step))
        self.steps[step].results.append(result)
        return result

    # -- the steps ----------------------------------------------------------------------------------
    def main(self):
        """Run the steps; Ctrl-C or SIGTERM at any moment still ends with a report and exit status 130."""
        self.probe, self.current = None, None
        try:
            return self._run_steps()
        except KeyboardInterrupt:
            return self.interrupted(self.current, self.probe)

    def _run_steps(self):
        self.probe = Job([self.python, "-c", VERSIONS_SCRIPT], self.env)  # alongside the install
        self.device = _device_line(self.dry)
        self.write()
        for name, step_fn in (("install", self.install), ("tests", self.tests), ("training", self.training),
                              ("benchmarks", self.benchmarks)):
            step = self.steps[name]
            if self.time_left() < 5:
                step.status = f"skipped: the {self.args.limit:.0f} s limit was reached"
                continue
            start, self.current = time.monotonic(), step
            try:
                if name != "install" and not self.versions:
                    self.versions = _parse_versions(self.probe.wait(time.monotonic() + 30))
                step_fn(step)
            except KeyboardInterrupt:
                step.seconds = time.monotonic() - start
                raise
            except Exception as exc:  # a bug here must still leave a report
                step.status, step.ok = f"failed: {type(exc).__name__}: {exc}", False
            step.seconds, self.current = time.monotonic() - start, None
            self.write()
        if not self.versions:
            self.versions = _parse_versions(self.probe.wait(time.monotonic() + 5))
        self.write()
        shutil.rmtree(self.work, ignore_errors=True)
        failed = [s.title for s in self.steps.values() if not s.ok]
        print(f"gpu-check: report in {self.report_path}; " + (f"not passed: {', '.join(failed)}" if failed
                                                              else "every step passed"))
        return 1 if failed else 0

    def install(self, step):
        check = [self.python, "-c", "import minipsp, minipsp.kernels; print(minipsp.__file__, "
                                    "minipsp.kernels.__file__)"]
        if self.dry:
            step.notes.append("dry run: no pip install (it would change this environment); the source-tree "
                              "fallback is used, which this exercises")
        else:
            pip = [self.python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                   "--disable-pip-version-check", "-e", "."]
            if self.run("install", pip).ok and self.run("install", check).ok:
                step.status, step.ok = "passed: installed in editable mode", True
                step.notes.append(f"minipsp imports from: `{step.results[-1].output.strip()}`")
                return
            step.notes.append("pip install failed (see its output below); running from the source tree instead")
        links = self.source_tree_packages()
        self.env["PYTHONPATH"] = os.pathsep.join([links, ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        self.env["PYTHONSAFEPATH"] = "1"  # `python -m` must not put the repository's minipsp/ first
        result = self.run("install", check)
        step.ok = result.ok
        step.status = "passed: from the source tree (PYTHONPATH)" if result.ok else \
            "failed: minipsp imports neither installed nor from the source tree"
        step.notes.append(f"PYTHONPATH={self.env['PYTHONPATH']}, PYTHONSAFEPATH=1; minipsp imports from: "
                          f"`{result.output.strip()}`")

    def source_tree_packages(self):
        """A folder holding minipsp/ with links to every entry of the source's minipsp/ and kernels/ linked
        as minipsp/kernels: the layout setup.py's package_dir gives an installed minipsp."""
        folder = os.path.join(self.work, "source-tree")
        package = os.path.join(folder, "minipsp")
        os.makedirs(package)
        for entry in os.listdir(os.path.join(ROOT, "minipsp")):
            if entry != "__pycache__":
                os.symlink(os.path.join(ROOT, "minipsp", entry), os.path.join(package, entry))
        os.symlink(os.path.join(ROOT, "kernels"), os.path.join(package, "kernels"))
        return folder

    def tests(self, step):
        junit = os.path.join(self.work, "junit.xml")
        # -v: one line per test, so a run stopped at its budget (before pytest writes its XML) is still counted
        # --continue-on-collection-errors: a test module that does not import on this machine (a package missing)
        # is one error in the counts, not the end of the session
        command = [self.python, "-m", "pytest", "-m", "gpu", "-v", "-p", "no:cacheprovider", f"--junitxml={junit}",
                   "--continue-on-collection-errors"]
        env = dict(self.env)
        if self.dry:
            command.append("tests/gpu")  # collected and skipped: only the plumbing is checked
            step.notes.append("dry run: without MINIPSP_REAL_GPU the gpu tests are collected and skipped")
        else:
            env["MINIPSP_REAL_GPU"] = "1"
        result = self.run("tests", command, env)
        counts, failures = _junit_counts(junit)
        if not counts:
            counts, failures = _verbose_counts(result.output)
            if counts:
                step.notes.append("pytest wrote no JUnit XML (it was stopped): the counts are of the tests it "
                                  "reported before that")
        step.ok = result.ok
        step.status = result.status()
        if counts:
            step.body += ("| tests | passed | failed | errors | skipped | seconds |\n|---|---|---|---|---|---|\n"
                          f"| {counts['tests']} | {counts['passed']} | {counts['failures']} | {counts['errors']} | "
                          f"{counts['skipped']} | {counts['time']} |\n")
        else:
            step.body += "No test was reported, so no counts (see the output below).\n"
        if failures:
            step.body += "\nFailed:\n\n" + "".join(f"- `{name}`: {message}\n" for name, message in failures)

    def training(self, step):
        config = DRY_TRAINING if self.dry else TRAINING
        runs = {}
        for device in ("gpu", "cpu"):
            out = os.path.join(self.work, f"train-{device}")
            env = dict(self.env)
            if device == "gpu" and self.dry:
                env["MINIPSP_KERNEL"] = "reference"  # the dry run's stand-in for the device: other kernels
            command = [self.python, "-m", "minipsp.cli", "train", "--data", "synthetic", "--layers", "18",
                       "--width", str(config["width"]), "--iters", str(config["iters"]),
                       "--batch-size", str(config["batch"]), "--crop-size", str(config["crop"]),
                       "--device", "cuda" if device == "gpu" and not self.dry else "cpu", "--seed", "0",
                       "--out", out, "--no-progress", "--set", "log_every=1", "--set", "eval_every=0",
                       "--set", "checkpoint_every=0", "--set", f"synthetic_train={config['images']}",
                       "--set", "synthetic_val=2"]
            if self.dry:
                command += ["--set", f"synthetic_size={config['crop']}"]
            runs[device] = (Job(command, env), out)
        until = self.until("training")
        losses = {}
        for device, (job, out) in runs.items():
            try:
                result = job.wait(until)
            except BaseException:  # Ctrl-C or SIGTERM while waiting for one run: the other one goes too
                for other, _ in runs.values():
                    _stop_quietly(other)
                raise
            result.command.insert(0, f"[{device}]")
            step.results.append(result)
            losses[device] = _losses(os.path.join(out, "log.jsonl"))
        what = "the NumPy reference kernels on the CPU (dry run)" if self.dry else "the GPU (--device cuda)"
        step.notes.append(f"PSPNet-18, width {config['width']}, {config['iters']} iterations, batch {config['batch']} "
                          f"x {config['crop']} x {config['crop']} crops of SyntheticScenes, seed 0; 'gpu' is {what}, "
                          "'cpu' the Numba CPU kernels; both started together")
        table, agree, summary = _compare_losses(losses["gpu"], losses["cpu"], config["iters"])
        step.body += summary + "\n\n" + table
        both_ran = all(r.ok for r in step.results)
        step.ok = both_ran and agree
        statuses = ", ".join(f"{d} {r.status()}" for d, r in zip(runs, step.results))
        step.status = ("passed: " if step.ok else "not passed: ") + statuses + \
            ("" if agree else "; the losses do not agree (or are missing)")

    def benchmarks(self, step):
        command = [self.python, "-m", "benchmarks.gpu"]
        command += ["--simulate", "--no-model", "--repeats", "1"] if self.dry else ["--repeats", "10"]
        result = self.run("benchmarks", command)
        step.ok, step.status = result.ok, result.status()
        step.body += "```\n" + (result.output.strip() or "(no output)") + "\n```\n"
        step.output_in_body = True

    def interrupted(self, step, probe):
        """Ctrl-C or SIGTERM: mark the step that was running, write what finished, exit status 130."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second stop must not cut the report short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for each in ([step] if step is not None else [s for s in self.steps.values() if s.status == "not run"]):
            each.status = "interrupted (this script was stopped)"
        if probe is not None:
            _stop_quietly(probe)
        self.write()
        shutil.rmtree(self.work, ignore_errors=True)
        print(f"gpu-check: interrupted; report of what finished in {self.report_path}")
        return 130

    # -- the report ---------------------------------------------------------------------------------
    def write(self):
        """Write (or rewrite) the report and the steps' whole outputs; never raises."""
        try:
            text = self.markdown()
            os.makedirs(os.path.dirname(os.path.abspath(self.report_path)), exist_ok=True)
            partial = self.report_path + ".partial"  # the report is whole or absent, never half-written
            with open(partial, "w") as f:
                f.write(text)
            os.replace(partial, self.report_path)
            os.makedirs(self.logs_dir, exist_ok=True)
            for name, step in self.steps.items():
                for i, result in enumerate(step.results):
                    with open(os.path.join(self.logs_dir, f"{name}-{i}.log"), "w") as f:
                        f.write(" ".join(result.command) + "\n\n" + result.output)
        except OSError as exc:
            print(f"gpu-check: cannot write the report {self.report_path}: {exc}", file=sys.stderr)

    def markdown(self):
        elapsed = time.monotonic() - self.started
        kind = "dry run (Numba's CUDA simulator, tiny shapes)" if self.dry else "real GPU"
        lines = [f"# minipsp GPU check, {self.when:%Y-%m-%d %H:%M} UTC", "",
                 f"{kind}; {elapsed:.0f} s of the {self.args.limit:.0f} s limit; minipsp {self.revision}", "",
                 "## Summary", "", "| step | status | seconds |", "|---|---|---|"]
        lines += [f"| {s.title} | {s.status} | {s.seconds:.0f} |" for s in self.steps.values()]
        lines += ["", "## Versions", "", "| package | version |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in self.versions.items()] or ["| (not probed yet) | |"]
        lines += ["", "## Device", "", self.device or "(not probed)", ""]
        for step in self.steps.values():
            lines += [f"## {step.title}", "", f"Status: {step.status}.", ""]
            lines += [f"- {note}" for note in step.notes] + ([""] if step.notes else [])
            if step.body:
                lines += [step.body, ""]
            for result in step.results:
                lines.append(f"`{' '.join(result.command)}`: {result.status()}, {result.seconds:.1f} s" +
                             ("" if step.output_in_body else "; the output's end:"))
                lines += [""] if step.output_in_body else ["", "```", _tail(result.output), "```", ""]
        return "\n".join(lines)


# -- helpers ----------------------------------------------------------------------------------------
def _default_report_path(when):
    folder = os.environ.get("OUT") or os.path.join(ROOT, "benchmarks", "results")
    return os.path.join(folder, f"gpu-check-{when:%Y%m%d-%H%M%S}.md")


def _revision():
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "at an unknown commit (no git)"
    if commit.returncode != 0:
        return "at an unknown commit (not a git checkout)"
    changed = len(dirty.stdout.splitlines())
    return f"at commit {commit.stdout.strip()}" + (f" with {changed} changed files" if changed else "")


def _device_line(dry):
    """nvidia-smi's line for each GPU, or why there is none."""
    if dry:
        return "none: a dry run under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        return "nvidia-smi: " + "; ".join(smi.stdout.strip().splitlines()) if smi.returncode == 0 else \
            f"nvidia-smi failed: {smi.stderr.strip() or smi.stdout.strip()}"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"nvidia-smi did not run: {exc}"


def find_gpu(python):
    """A sentence naming the GPU this machine has, or None: nvidia-smi's list first, then CuPy's count."""
    try:
        smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
        if smi.returncode == 0 and "GPU" in smi.stdout:
            return smi.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    try:
        count = subprocess.run([python, "-c", "import cupy; print(cupy.cuda.runtime.getDeviceCount())"],
                               capture_output=True, text=True, timeout=60, env=env)
        if count.returncode == 0 and count.stdout.strip().isdigit() and int(count.stdout) > 0:
            return f"{int(count.stdout)} GPU(s) seen by CuPy"
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def _parse_versions(result):
    try:
        return json.loads(result.output.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"(version probe failed)": result.status() + ": " + _tail(result.output, 300).replace("\n", " ")}


def _junit_counts(path):
    """({tests, passed, failures, errors, skipped, time}, [(test, first line of its message)]) or ({}, [])."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return {}, []
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["time"] = f"{sum(float(s.get('time', 0)) for s in suites):.1f}"
    failures = []
    for case in root.iter("testcase"):
        for problem in list(case.findall("failure")) + list(case.findall("error")):
            message = (problem.get("message") or problem.text or "").strip().splitlines()
            failures.append((f"{case.get('classname')}::{case.get('name')}", (message[0] if message else "")[:300]))
    return counts, failures


VERDICTS = ("PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL", "XPASS")


def _verbose_counts(output):
    """The counts of _junit_counts from pytest -v's lines ('tests/x.py::name PASSED [ 3%]'), for a stopped run."""
    verdicts, failures = {}, []
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 2 and "::" in words[0] and words[1] in VERDICTS:
            verdicts[words[0]] = words[1]   # a test's teardown ERROR comes after its PASSED: the last one counts
    if not verdicts:
        return {}, []
    values = list(verdicts.values())
    counts = {"tests": len(values), "failures": values.count("FAILED"), "errors": values.count("ERROR"),
              "skipped": values.count("SKIPPED") + values.count("XFAIL"), "time": "?"}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    failures = [(name, verdict.lower()) for name, verdict in verdicts.items() if verdict in ("FAILED", "ERROR")]
    return counts, failures


def _losses(log_path):
    """{iteration: loss} from a run's log.jsonl (as far as it got)."""
    losses = {}
    try:
        with open(log_path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if "loss" in record and "iter" in record:
                    losses[int(record["iter"])] = float(record["loss"])
    except OSError:
        pass
    return losses


def _compare_losses(gpu, cpu, iters):
    """(Markdown table of every iteration, whether they agree, a summary sentence)."""
    common = sorted(set(gpu) & set(cpu))
    rows = ["| iteration | gpu loss | cpu loss | abs diff | rel diff |", "|---|---|---|---|---|"]
    relative = {}
    for it in common:
        diff = abs(gpu[it] - cpu[it])
        relative[it] = diff / max(abs(cpu[it]), 1e-12)
        rows.append(f"| {it} | {gpu[it]:.6f} | {cpu[it]:.6f} | {diff:.2e} | {relative[it]:.2e} |")
    if not common:
        return "", False, (f"No iteration finished on both devices (gpu logged {len(gpu)}, cpu {len(cpu)} of "
                           f"{iters}), so there is nothing to compare.")
    first, worst = relative[common[0]], max(relative.values())
    agree = len(common) == iters and first <= FIRST_LOSS_RTOL and worst <= ALL_LOSSES_RTOL
    summary = (f"{len(common)} of {iters} iterations on both devices (gpu logged {len(gpu)}, cpu {len(cpu)}). "
               f"Relative loss difference: {first:.2e} at iteration {common[0]}, at most {worst:.2e} (iteration "
               f"{max(relative, key=relative.get)}); final loss gpu {gpu[common[-1]]:.6f}, cpu {cpu[common[-1]]:.6f}. "
               f"{'They agree' if agree else 'They do NOT agree'} (needed: all {iters} iterations, the first "
               f"within {FIRST_LOSS_RTOL:g}, every one within {ALL_LOSSES_RTOL:g}).")
    return "\n".join(rows) + "\n", agree, summary


def _tail(text, chars=TAIL_CHARS):
    text = text.strip()
    return text if len(text) <= chars else "[...]\n" + text[-chars:]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true",
                        help="the same steps, tiny, under Numba's CUDA simulator (no GPU needed)")
    parser.add_argument("--limit", type=float, default=LIMIT_S, help="seconds for everything (default 480)")
    parser.add_argument("--report", help="where to write the report (default: $OUT or benchmarks/results/)")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs the steps")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if not args.dry_run:
        gpu = find_gpu(args.python)
        if gpu is None:
            print("gpu-check: no NVIDIA GPU on this machine (nvidia-smi lists none, CuPy sees none); nothing to "
                  "check (python -m benchmarks.gpu_check --dry-run tests this script under the simulator)")
            return 0
        print(f"gpu-check: {gpu}; at most {args.limit:.0f} s, report in "
              f"{args.report or os.environ.get('OUT') or 'benchmarks/results/'}", flush=True)
    try:
        check = Check(args, started)
    except KeyboardInterrupt:  # stopped while it was still setting up: nothing ran, nothing to report
        print("gpu-check: interrupted before the first step")
        return 130
    return check.main()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM (a scheduler's stop) ends like Ctrl-C, with a report
    raise SystemExit(main())
