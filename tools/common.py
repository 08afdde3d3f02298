"""What the tools share: Project3.py imported from the repository root, --out checked before any
work, the tools' own result files, and Project3's error conventions (one sentence and exit status
2; one line and 130 on Ctrl-C, 143 on SIGTERM, and 129 on SIGHUP where the platform has it).

The tools import Project3; Project3 never imports them. Each result file has one writer:
Project3.py writes figures/results.json, and each tool its own figures/<tool>.json, so no two
runs ever write one file and nothing needs a lock.
"""

import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import Project3 as P

# The tools' own result files in figures/, each a JSON object of results.json-like entries.
TOOL_FILES = ("seeds.json", "ablation.json", "bench.json", "stacks.json")
# SIGTERM exists everywhere; SIGHUP (a closed terminal) on POSIX only, not on Windows.
STOP_SIGNALS = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]


class Stopped(BaseException):
    """SIGTERM or SIGHUP, raised where the tool is, so that its temporaries are removed on the way
    out exactly as on Ctrl-C. Not an Exception: nothing on the way catches it by mistake."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class Said(BaseException):
    """An end that Project3.main has already announced in its one line (Ctrl-C inside a run the
    tool started): the tool exits with that status and prints nothing more."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


def raise_stopped(signum, frame):
    raise Stopped(signum)


def out_dir(given, writing=False):
    """--out as the tools take it: the folder holding figures/ (default: the repository).
    writing: the folder and its figures/ must take new files, checked now."""
    if given == "":
        raise P.UserError("--out needs a folder; an empty one was given.")
    out = Path(given).resolve() if given else ROOT
    if writing:  # report.pdf and the zip go in out, the tools' records in figures/
        try:
            for folder in (out, out / "figures"):
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "write-test.tmp").touch()
                (folder / "write-test.tmp").unlink()
        except OSError as error:
            raise P.UserError(f"--out {out}: not a folder this tool can write ({error}).") from None
    return out


def pick_device(requested, needs_torch):
    """Part 2's device as Project3.py picks it: --device, else CUDA where there is one."""
    if not needs_torch:
        return "cpu"
    if P.torch is None:
        raise P.UserError(f"this needs PyTorch, which cannot be imported here ({P.TORCH_PROBLEM}).")
    return P.pick_device(requested)


def summarized(record):
    """A training's record from results.json with what the report quotes of its history beside it:
    its epochs and steps, the last epoch's accuracies and the best validation epoch."""
    if "history" not in record:
        return record
    history = record["history"]
    best = max(range(len(history["val_acc"])), key=history["val_acc"].__getitem__)
    return {
        "epochs": len(history["step"]),
        "steps": history["step"][-1],
        "final_train_accuracy": history["train_acc"][-1],
        "final_val_accuracy": history["val_acc"][-1],
        "best_val_accuracy": history["val_acc"][best],
        "best_epoch": best + 1,
        **record,
    }


def run_results(out):
    """Project3.py's results.json under out, each training summarized."""
    return {key: summarized(entry) for key, entry in P.read_results(out).items()}


def all_results(out):
    """results.json with every tool's entries beside Project3's: what the report is made from."""
    results = run_results(out)
    for name in TOOL_FILES:
        results.update(P.read_results(out, name))
    return results


def run_tool(main, argv=None):
    """Run a tool's main() with Project3's conventions for errors and signals."""
    name = Path(sys.argv[0]).name
    for signum in STOP_SIGNALS:
        signal.signal(signum, raise_stopped)
    try:
        main(argv)
    except P.UserError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted; results written so far are kept.", file=sys.stderr)
        return 130
    except Said as said:
        return said.status
    except Stopped as stop:
        signame = signal.Signals(stop.signum).name
        print(f"{name}: stopped by {signame}; results written so far are kept.", file=sys.stderr)
        return 128 + stop.signum
    return 0
