"""What the tools share: Project3.py imported from the repository root, --out checked before any
work, and Project3's error conventions (one sentence and exit status 2; one line and 130 on Ctrl-C,
143 on SIGTERM, 129 on SIGHUP).

The tools import Project3; Project3 never imports them.
"""

import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import Project3 as P


class Stopped(BaseException):
    """SIGTERM or SIGHUP, raised where the tool is, so that its temporaries are removed on the way
    out exactly as on Ctrl-C. Not an Exception: nothing on the way catches it by mistake."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def raise_stopped(signum, frame):
    raise Stopped(signum)


def out_dir(given, writing=False):
    """--out as the tools take it: the folder holding figures/results.json (default: the
    repository). writing: the folder and its figures/ must take new files, checked now."""
    if given == "":
        raise P.UserError("--out needs a folder; an empty one was given.")
    out = Path(given).resolve() if given else ROOT
    if writing:
        P.check_writable(out, subfolders=(".", "figures"))  # report.pdf and the zip go in out
    return out


def run_tool(main, argv=None):
    """Run a tool's main() with Project3's conventions for errors and signals."""
    name = Path(sys.argv[0]).name
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, raise_stopped)
    try:
        main(argv)
    except P.UserError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted; results written so far are kept.", file=sys.stderr)
        return 130
    except Stopped as stop:
        signame = signal.Signals(stop.signum).name
        print(f"{name}: stopped by {signame}; results written so far are kept.", file=sys.stderr)
        return 128 + stop.signum
    return 0
