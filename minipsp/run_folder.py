"""The run folder of `minipsp train` (--out): created with a clear error, locked, tidied, and left sound.

    folder = RunFolder("runs/x").open()     # creates runs/x, locks it, removes stale temporary files
    ...                                     # train; only this process writes into runs/x
    folder.close()                          # unlocks (also when the process dies: the kernel drops it)

What each piece is for:
- `open` turns the OSErrors of making a folder (an existing file, /proc/x, a read-only file system, no
  permission) into one RunFolderError naming --out, before any training work is done.
- The lock is an fcntl.flock on `runs/x/.lock`, which holds the holder's PID. A second `train` on the
  same folder is refused with that PID instead of interleaving its log lines and checkpoints with the
  first's. The kernel releases a flock when its process ends, however it ends (SIGKILL included), so a
  crashed run never leaves a folder locked.
- `minipsp.save` writes `.checkpoint.mpsp.XXXX.tmp` and renames it over the checkpoint; a SIGKILL in
  between leaves the temporary file. With the lock held no other run can be writing one, so every
  such file in the folder is stale and is removed.
- `read_training_checkpoint` reads a run's checkpoint.mpsp and says in one line when it is damaged or
  is not a training checkpoint at all (a torch or semseg file copied there).
- `sigterm_as_interrupt` makes SIGTERM (what a cluster's scheduler sends before it kills) behave like
  Ctrl-C: an `Interrupted` (a KeyboardInterrupt) is raised where the program is, so the checkpoint on
  disk, written atomically, stays the last complete one.
- `signals_deferred` holds Ctrl-C and SIGTERM back while a checkpoint is written and noted, so the line
  printed on a stop names the iteration that the file on disk really holds, and no temporary file is left.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pickle
import signal
import threading
import warnings
import zipfile

from minipsp.config import ConfigError

try:
    import fcntl
except ImportError:          # Windows: no flock; runs are then not protected from each other
    fcntl = None

LOCK_NAME = ".lock"
# What a training checkpoint holds (minipsp.train.Trainer.state); a file without these is not one.
TRAINING_KEYS = ("model", "optimizer", "scheduler", "iteration", "rng", "loader", "config")


class RunFolderError(ConfigError):
    """The run folder (--out) cannot be used: the message names it and says why."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: `signum` is the signal, `where` what the program was doing (may be empty)."""

    def __init__(self, signum=signal.SIGINT, where=""):
        super().__init__(where)
        self.signum, self.where = int(signum), where     # the CLI exits with 128 + signum: 130, 143


class RunFolder:
    """RunFolder(path): `open()` makes, locks and tidies it; `close()` unlocks it."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.lock_path = os.path.join(self.path, LOCK_NAME)
        self._lock_file = None
        self.created = False

    def open(self, lock=True) -> RunFolder:
        """Create the folder, take its lock and remove stale temporary checkpoint files (lock=False, e.g.
        on ranks other than 0: only create it; the rank that writes does the rest). Raises RunFolderError."""
        self.create()
        if lock:
            self.lock()
            self.remove_stale_temporaries()      # only with the lock: then no live run is writing one
        return self

    def create(self) -> None:
        path = self.path
        if os.path.exists(path) and not os.path.isdir(path):
            raise RunFolderError(f"--out {path!r} is a file; expected a run folder (a directory, new or holding a run)")
        self.created = not os.path.exists(path)
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"--out {path!r}: cannot create the run folder ({exc.strerror or exc}); "
                                 "expected a folder that can be created and written") from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise RunFolderError(f"--out {path!r}: the run folder is not writable (permission denied); "
                                 "expected a folder this user can write")

    def lock(self) -> None:
        """Take the folder's flock, or raise RunFolderError naming the process that holds it."""
        if fcntl is None:
            return
        while True:
            try:
                file = open(self.lock_path, "a+")
            except OSError as exc:      # read-only file system, no permission (checked before, but races)
                raise RunFolderError(f"--out {self.path!r}: cannot write in the run folder ({exc.strerror or exc})"
                                     ) from None
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.seek(0)
                holder = file.read().strip() or "unknown"
                file.close()
                raise RunFolderError(f"--out {self.path!r} is in use by another minipsp train (PID {holder}); "
                                     "wait for it to end, or choose another --out") from None
            except OSError as exc:       # e.g. ENOLCK on a network file system without locks
                warnings.warn(f"cannot lock the run folder {self.path!r} ({exc.strerror or exc}); nothing stops "
                              "a second run from writing into it", stacklevel=2)
                file.close()
                return
            # The previous holder removes the file when it closes; if it did so between our open and our
            # flock, we hold a lock on a file nobody else will open: start again on the current one.
            try:
                current = os.stat(self.lock_path).st_ino == os.fstat(file.fileno()).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            file.close()
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._lock_file = file

    def remove_stale_temporaries(self, name="checkpoint.mpsp") -> list:
        """Remove `.NAME.*.tmp` files (minipsp.save's, left by a killed run); returns their paths."""
        removed = []
        for path in glob.glob(os.path.join(glob.escape(self.path), f".{name}.*.tmp")):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed.append(path)
        return removed

    def close(self, discard=False) -> None:
        """Remove the lock file and release the lock (unlink first, so a waiting run re-checks, see lock).

        discard=True (a run that failed to start) also removes the folder if `open` created it and it
        is still empty, so a mistyped setting leaves nothing behind."""
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                os.remove(self.lock_path)
            self._lock_file.close()
            self._lock_file = None
        if discard and self.created:
            with contextlib.suppress(OSError):
                os.rmdir(self.path)                 # fails, and so keeps it, unless it is empty

    @property
    def locked(self) -> bool:
        return self._lock_file is not None


def read_training_checkpoint(path) -> dict:
    """The state dict of a run's checkpoint (minipsp.train.Trainer.state), or one ConfigError that says
    why the file is not one: damaged, truncated, or another kind of checkpoint (torch, semseg)."""
    import minipsp

    path = os.fspath(path)
    try:
        state = minipsp.load(path)
    except (ValueError, OSError, EOFError, KeyError, IndexError, TypeError, AttributeError, RecursionError,
            pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        # ValueError includes minipsp.CheckpointError; the rest are what older readers let through
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot read checkpoint {path!r}: {detail}") from None
    missing = [k for k in TRAINING_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        kind = (f"a dict with keys {sorted(map(str, state))[:5]}" if isinstance(state, dict)
                else f"a {type(state).__name__}")
        raise ConfigError(f"checkpoint {path!r} is not a minipsp training checkpoint: it is {kind}, without "
                          f"{', '.join(missing)}; a torch or semseg checkpoint can start a new run with "
                          f"--set init={path}")
    return state


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Inside the block, SIGTERM raises Interrupted(SIGTERM) like Ctrl-C raises KeyboardInterrupt.

    Signal handlers can only be set in the main thread; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_deferred():
    """Inside the block, Ctrl-C and SIGTERM wait: the first one that came acts (as it would have) when the
    block ends. For a checkpoint write and the note of which iteration it holds, which must happen together:
    a signal between the two would leave a message naming the previous checkpoint (or a temporary file).

    Signal handlers can only be set in the main thread; elsewhere, or when a handler was not set from
    Python (so it cannot be put back), this defers nothing."""
    signals = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or \
            any(signal.getsignal(s) is None for s in signals):
        yield
        return
    pending = []

    def record(signum, frame):
        pending.append(signum)

    previous = {}
    try:
        for s in signals:
            previous[s] = signal.signal(s, record)
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending:
            handler = previous[pending[0]]
            if callable(handler):
                handler(pending[0], None)           # raises KeyboardInterrupt or Interrupted, as it would have
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), pending[0])    # the default action: end the process by that signal


__all__ = ["Interrupted", "RunFolder", "RunFolderError", "read_training_checkpoint", "signals_deferred",
           "sigterm_as_interrupt"]
