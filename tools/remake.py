"""Every committed number and report.pdf, remade from scratch in the order they build on each other:

    python tools/remake.py [--quick] [--out DIR] [--data DIR] [--skip STEP ...]

  run       python Project3.py: results.json, the weights and the figures (the grader's run)
  seeds     tools/seeds.py --seeds 10: the seed spread of the four networks (seeds.json)
  ablation  tools/ablation.py, then its multi-seed rows (ablation.json)
  bench     tools/bench.py (bench.json)
  stacks    tools/stack_run.py on the oldest and the newest stacks, where `nox` has made them
            (.nox/oldest, .nox/newest; stacks.json)
  report    tools/report.py: figures/numbers.tex, the tables and report.pdf

Each step prints a line when it starts and when it ends, and the first that fails stops the remake
with one sentence. --quick runs every step as its smoke test into DIR (default quick/), never over
the committed files. The runs that earlier recipes left in seeds.json (seeds_previous,
seeds_history) and ablation.json (before_deskew) are kept, not remade: they need the code of those
recipes (README, "How the settings were chosen").
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

try:  # Ctrl-C while importing (torch takes a second or two): one line and status 130
    from common import ROOT, P, Said, out_dir, run_tool
except KeyboardInterrupt:
    print(f"{Path(__file__).name}: interrupted.", file=sys.stderr)
    sys.exit(130)

STEPS = ("run", "seeds", "ablation", "bench", "stacks", "report")
# The rows rerun over seeds 1-4 beside seed 0's
MULTI_SEED_ROWS = ["mlp_averaging", "cnn_deskew", "cnn_no_smoothing", "cnn_sgd_augment"]
STACKS = {"oldest_stack": ".nox/oldest", "newest_stack": ".nox/newest"}


def commands(step, args, out):
    """The commands of one step, each a list for subprocess."""
    python = [sys.executable]
    common = ["--out", str(out)] + ["--quick"] * args.quick
    data = ["--data", args.data] if args.data else []
    tool = {name: [*python, str(ROOT / "tools" / f"{name}.py")] for name in STEPS}
    if step == "run":
        return [[*python, str(ROOT / "Project3.py"), *common, *data]]
    if step == "seeds":
        return [[*tool["seeds"], "--seeds", "2" if args.quick else "10", *common, *data]]
    if step == "ablation":
        more = ["--seeds", "1", "2", "3", "4", "--rows", *MULTI_SEED_ROWS]
        return [[*tool["ablation"], *common, *data], [*tool["ablation"], *more, *common, *data]]
    if step == "bench":
        return [[*tool["bench"], *common, *data]]
    if step == "stacks":
        present = {key: ROOT / env / "bin" / "python" for key, env in STACKS.items()}
        stack_run = [*python, str(ROOT / "tools" / "stack_run.py")]
        return [
            [*stack_run, "--python", str(path), "--key", key, *common]
            for key, path in present.items()
            if path.exists()
        ]
    return [[*python, str(ROOT / "tools" / "report.py"), "--out", str(out)]]


def main(argv=None):
    parser = argparse.ArgumentParser(description="Every committed number and report.pdf, remade.")
    parser.add_argument("--quick", action="store_true", help="every step's smoke test, into quick/")
    parser.add_argument("--out", help="folder of figures/, weights/ and report.pdf (default: here)")
    parser.add_argument("--data", help="data folder, as for Project3.py")
    parser.add_argument("--skip", nargs="+", choices=STEPS, default=[], help="steps to leave out")
    args = parser.parse_args(argv)
    out = out_dir(args.out or (str(ROOT / "quick") if args.quick else None), writing=True)
    steps = [step for step in STEPS if step not in args.skip]
    done = []
    for number, step in enumerate(steps, 1):
        start = time.perf_counter()
        runs = commands(step, args, out)
        what = "no stack made by nox yet" if step == "stacks" and not runs else ""
        P.print_safely(f"[{number}/{len(steps)}] {step}: started {what}".rstrip())
        for command in runs:
            status = subprocess.run(command, cwd=ROOT).returncode
            if status == 130:  # Ctrl-C: the step has said so in its one line
                raise Said(130)
            if status != 0:
                finished = f"; {', '.join(done)} finished" if done else ""
                raise P.UserError(
                    f"step {step} failed with status {status} (its message is above){finished}."
                )
        done.append(step)
        seconds = time.perf_counter() - start
        P.print_safely(f"[{number}/{len(steps)}] {step}: done in {seconds:.0f} s")
    P.print_safely(f"remade {', '.join(done)} in {out}")


if __name__ == "__main__":
    sys.exit(run_tool(main))
