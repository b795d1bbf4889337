"""The `minipsp` console script's entry point: Ctrl-C while the program starts is one line, status 130.

`import minipsp` loads NumPy, Numba and the kernels: a second or more. A Ctrl-C in that second used to end
in a traceback from wherever the import happened to be. Here SIGINT (and SIGTERM: 143) print the CLI's own
line and end the process at once until minipsp.cli is loaded; then the CLI's handling takes over (which
checkpoint is left, exit 130 / 143). Nothing is written during the import, so ending it at once loses
nothing.

This module is top-level, outside the package, because importing anything under `minipsp.` first runs
minipsp/__init__.py: the heavy import itself. `python -m minipsp` and `python -m minipsp.cli` work too, but
Python imports the package before any code of theirs runs, so only the console script (and
`python -m _minipsp_entry`) have the guard.
"""

import os
import signal
import sys

_WORDS = {signal.SIGINT: "interrupted", signal.SIGTERM: "stopped by signal 15 (SIGTERM)"}


def _end_at_once(signum, frame):
    os.write(2, f"minipsp: {_WORDS[signum]}\n".encode())
    os._exit(128 + signum)


def main(argv=None) -> int:
    """Load minipsp.cli with Ctrl-C guarded, then run it; returns the exit status."""
    previous = {}
    for signum in _WORDS:
        handler = signal.getsignal(signum)
        if handler is not None and handler is not signal.SIG_IGN:   # ignored (nohup, a script's `cmd &`): stays so
            previous[signum] = signal.signal(signum, _end_at_once)
    try:
        from minipsp.cli import main as cli_main

        for signum, handler in previous.items():
            signal.signal(signum, handler)
        return cli_main(argv)
    except KeyboardInterrupt as exc:      # one that came before the CLI's own handling (or after it)
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"minipsp: {_WORDS.get(signum, f'stopped by signal {signum}')}", file=sys.stderr)
        return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
