"""Issue 13, part 4: runs that share a folder, signals and leftovers. A second `train` on a locked --out is
refused with the holder's PID (a real second process here), stale temporary checkpoints are removed, SIGTERM
is handled like Ctrl-C (a real signal to a real training process: exit 143, one line, the checkpoint whole),
Ctrl-C at start-up is one line, a finished run resumes without a duplicate evaluation, and the NaN stop's
advice (a lower --lr on resume) is accepted and logged."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from train_tiny import one_line_error, tiny_config

import minipsp
from minipsp.cli import main
from minipsp.config import to_toml
from minipsp.optim import poly_lr
from minipsp.run_folder import LOCK_NAME, RunFolder, read_training_checkpoint
from minipsp.train import Trainer, TrainingDiverged, read_log, train


def log_lines(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_a_second_run_on_a_locked_folder_is_refused_with_the_pid(tmp_path, capsys):
    out = tmp_path / "run"
    first = Trainer(tiny_config(width=8, out=str(out)))
    assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())
    one_line_error(capsys, ["train", "--out", str(out), "--overwrite", "--width", "8", "--no-progress"],
                   f"--out {str(out)!r} is in use by another minipsp train (PID {os.getpid()})")
    first.close()
    assert not (out / LOCK_NAME).exists()
    assert train(tiny_config(width=8, iters=1, out=str(out)), overwrite=True)["last"]["iter"] == 1


def test_stale_temporary_checkpoints_are_removed_at_start_and_on_resume(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = out / ".checkpoint.mpsp.k3j2h1.tmp"               # what a SIGKILL during minipsp.save leaves
    stale.write_bytes(b"\0" * 100_000)
    other = out / ".notes.tmp"                                # not ours: kept
    other.write_text("x")
    cfg = tiny_config(width=8, iters=1, out=str(out))
    train(cfg)
    assert not stale.exists() and other.exists()
    stale.write_bytes(b"\0" * 100_000)
    train(cfg.replace(iters=2), resume=True)
    assert not stale.exists()
    assert RunFolder(out).remove_stale_temporaries() == []


def test_sigterm_stops_a_run_like_ctrl_c_and_a_second_process_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    config = tmp_path / "tiny.toml"
    config.write_text(to_toml(tiny_config(width=8, iters=100000, checkpoint_every=1, log_every=1)))
    child = subprocess.Popen([sys.executable, "-m", "minipsp.cli", "train", str(config), "--out", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300         # a fresh clone compiles the kernels first
        while not ((out / "checkpoint.mpsp").exists() and (out / LOCK_NAME).exists()):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the training process wrote no checkpoint in 300 s"
            time.sleep(0.1)
        # the other process holds the folder: this one is refused, naming it
        one_line_error(capsys, ["train", str(config), "--out", str(out), "--overwrite"],
                       f"is in use by another minipsp train (PID {child.pid})")
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 143
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minipsp: stopped by signal 15 (SIGTERM) at iteration "), err
    assert f"continue with minipsp train --out {out} --resume" in lines[0]
    state = read_training_checkpoint(out / "checkpoint.mpsp")        # whole, and the iteration the line names
    assert f"holds iteration {state['iteration']}:" in lines[0]
    assert not [name for name in os.listdir(out) if name.startswith(".")]       # no temp file, no lock


@pytest.mark.parametrize("moment", ["after mkstemp", "after os.replace"])
def test_a_signal_during_a_checkpoint_write_waits_for_the_write_and_its_note(tmp_path, monkeypatch, moment):
    """A real SIGTERM at the two moments of minipsp.save where a stop used to go wrong: just after mkstemp
    (its temporary file was left behind) and after os.replace, in the folder's fsync, slow on a busy disk
    (the stop named the previous checkpoint while the file held the new one). It now acts once the
    checkpoint is written and noted: the message names the iteration the file holds, no temporary is left."""
    import minipsp.serialization
    from minipsp.run_folder import Interrupted, sigterm_as_interrupt

    out = tmp_path / "run"
    trainer = Trainer(tiny_config(width=8, iters=3, checkpoint_every=1, out=str(out)))
    sent = []

    def then_sigterm(function):
        def wrapped(*args, **kwargs):
            result = function(*args, **kwargs)
            if not sent:                                      # the first checkpoint's write only
                sent.append(True)
                os.kill(os.getpid(), signal.SIGTERM)
            return result
        return wrapped
    owner, name = ((minipsp.serialization.tempfile, "mkstemp") if moment == "after mkstemp" else
                   (minipsp.serialization, "_fsync_directory"))
    monkeypatch.setattr(owner, name, then_sigterm(getattr(owner, name)))
    with sigterm_as_interrupt(), pytest.raises(Interrupted) as stop:
        trainer.run()
    assert sent and stop.value.signum == signal.SIGTERM
    assert minipsp.load(str(out / "checkpoint.mpsp"))["iteration"] == 1
    assert stop.value.where.startswith("at iteration 1 of 3; ") and "holds iteration 1:" in stop.value.where
    assert not [name for name in os.listdir(out) if name.startswith(".")]       # no temp file, no lock


def test_signals_deferred_acts_at_the_end_of_the_block_as_the_handler_would():
    from minipsp.run_folder import Interrupted, signals_deferred, sigterm_as_interrupt

    done = []
    with pytest.raises(KeyboardInterrupt) as stop:
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("after the signal")
    assert done == ["after the signal"] and type(stop.value) is KeyboardInterrupt
    with sigterm_as_interrupt():
        with pytest.raises(Interrupted) as stop:
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGINT)               # a second one: the first acts
                done.append("after both")
        assert stop.value.signum == signal.SIGTERM and done[-1] == "after both"
        with signals_deferred():                                    # none: nothing happens
            done.append("quiet")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_ctrl_c_in_training_names_the_checkpoint_left(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    step = Trainer.step

    def interrupted_at_4(self, images, labels):        # Ctrl-C during iteration 4
        if self.iteration == 3:
            raise KeyboardInterrupt
        return step(self, images, labels)
    monkeypatch.setattr(Trainer, "step", interrupted_at_4)
    config = tmp_path / "tiny.toml"
    config.write_text(to_toml(tiny_config(width=8, iters=5, checkpoint_every=2)))
    assert main(["train", str(config), "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip()
    assert err == (f"minipsp: interrupted at iteration 3 of 5; {out / 'checkpoint.mpsp'} holds iteration 2: "
                   f"continue with minipsp train --out {out} --resume")
    assert minipsp.load(str(out / "checkpoint.mpsp"))["iteration"] == 2 and not (out / LOCK_NAME).exists()


@pytest.mark.parametrize("where", ["build_parser", "build_dataset"])
def test_ctrl_c_during_start_up_is_one_line(tmp_path, capsys, monkeypatch, where):
    import minipsp.cli
    import minipsp.train

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(minipsp.cli if where == "build_parser" else minipsp.train, where, ctrl_c)
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--width", "8", "--no-progress"]) == 130
    assert capsys.readouterr().err.strip() == "minipsp: interrupted"
    assert not out.exists()                   # the folder the start-up made (and its lock) is gone again


def test_resuming_a_finished_run_adds_no_duplicate_evaluation(tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_config(width=8, iters=2, eval_every=2, eval_count=1, out=str(out)))
    before = (out / "log.jsonl").read_text()
    assert sum("eval" in r for r in log_lines(out)) == 1
    for _ in range(2):
        assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
        printed = capsys.readouterr().out
        assert "iteration 2:" in printed and "mIoU" in printed
    assert (out / "log.jsonl").read_text() == before


def test_a_lower_lr_on_resume_is_accepted_logged_and_used(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = tiny_config(width=8, iters=2, out=str(out))
    train(cfg)
    assert main(["train", "--out", str(out), "--resume", "--iters", "4", "--lr", "0.001", "--no-progress"]) == 0
    records = log_lines(out)
    assert records[2] == {"iter": 2, "change": {"base_lr": [0.01, 0.001]}}
    assert [r["iter"] for r in read_log(out)[0]] == [1, 2, 3, 4]
    for r in read_log(out)[0][2:]:
        assert r["lr"] == pytest.approx(poly_lr(0.001, r["iter"] - 1, 4))
    state = minipsp.load(str(out / "checkpoint.mpsp"))
    assert state["config"]["base_lr"] == 0.001
    assert state["scheduler"]["base_lrs"] == pytest.approx([0.001, 0.01])      # the head keeps its 10x


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_the_nan_stop_advice_can_be_followed(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as stop:
        train(tiny_config(width=8, iters=12, base_lr=1e6, checkpoint_every=1, out=str(out)))
    advice = str(stop.value).split("resume from it with a lower learning rate: ")[1]
    command = advice.split()
    assert command[:2] == ["minipsp", "train"] and "--resume" in command and "--lr" in command
    # the advised command is accepted (it may diverge again: then it stops the same way, status 1)
    assert main(command[1:] + ["--no-progress"]) in (0, 1)
    changes = [r for r in log_lines(out) if "change" in r]
    assert changes and changes[0]["change"]["base_lr"] == [1e6, 0.01]     # a tenth, at most the default
