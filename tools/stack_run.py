"""The grader's run on another Python stack: Project3.py copied alone beside the data into a scratch
folder and run there by the given interpreter, as a grader with that setup would. Its versions,
seconds and accuracies go into figures/stacks.json under --key (default oldest_stack).

    python tools/stack_run.py --python .nox/oldest/bin/python [--key oldest_stack] [--quick]

Make the interpreter's environment first, e.g. `nox -s oldest` (noxfile.py).
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:  # Ctrl-C while importing (torch takes a second or two): one line and status 130
    from common import ROOT, P, out_dir, run_results, run_tool
except KeyboardInterrupt:
    print(f"{Path(__file__).name}: interrupted.", file=sys.stderr)
    sys.exit(130)

NETWORKS = [key for key, _, _ in P.NETWORKS]  # the four networks of Table 1
VERSIONS = (
    "import sys, numpy, matplotlib, torch; print(sys.version.split()[0], numpy.__version__, "
    "matplotlib.__version__, torch.__version__)"
)


def main(argv=None):
    parser = argparse.ArgumentParser(description="The grader's run on another Python stack.")
    parser.add_argument("--python", required=True, help="the interpreter of that stack")
    parser.add_argument("--key", default="oldest_stack", help="stacks.json key (oldest_stack)")
    parser.add_argument("--out", help="folder whose figures/stacks.json receives the run")
    parser.add_argument("--quick", action="store_true", help="the --quick run: a smoke test")
    args = parser.parse_args(argv)
    out = out_dir(args.out, writing=True)
    recorded = P.read_results(out, "stacks.json")
    python_path = shutil.which(args.python)  # absolute, but not through the venv's symlink
    if python_path is None:
        raise P.UserError(f"--python {args.python}: no such interpreter.")
    python_path = str(Path(python_path).absolute())
    probe = subprocess.run([python_path, "-c", VERSIONS], capture_output=True, text=True)
    if probe.returncode != 0:
        last = (probe.stderr.strip() or "no message").splitlines()[-1]
        raise P.UserError(f"{args.python} cannot import numpy, matplotlib and torch ({last}).")
    python, numpy, matplotlib, torch = probe.stdout.split()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        shutil.copy(ROOT / "Project3.py", folder / "Project3.py")
        shutil.copytree(ROOT / "Project3_data", folder / "Project3_data")  # no symlink: Windows
        command = [python_path, str(folder / "Project3.py")] + ["--quick"] * args.quick
        start = time.perf_counter()
        run = subprocess.run(command, cwd=folder)
        wall = time.perf_counter() - start
        if run.returncode != 0:
            raise P.UserError(f"the run on {args.python} failed with status {run.returncode}.")
        results = run_results(folder / "quick" if args.quick else folder)
    entry = {
        "python": python,
        "numpy": numpy,
        "matplotlib": matplotlib,
        "torch": torch,
        "quick": args.quick,
        "seconds": round(sum(results["seconds"].values()), 1),
        "wall_seconds": round(wall, 1),
        "section_seconds": results["seconds"],
        "test_accuracy": {key: results[key]["test_accuracy"] for key in NETWORKS},
        "val_accuracy": {key: results[key]["val_accuracy"] for key in NETWORKS},
    }
    P.write_results(out, name="stacks.json", results={**recorded, args.key: entry})
    print(json.dumps(entry, indent=1))


if __name__ == "__main__":
    sys.exit(run_tool(main))
