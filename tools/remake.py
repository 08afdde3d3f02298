"""Every committed number and report.pdf, remade from scratch in the order they build on each other:

    python tools/remake.py [--quick] [--out DIR] [--data DIR] [--skip STEP ...] [--resume]

  run       python Project3.py: results.json, the weights and the figures (the grader's run)
  seeds     tools/seeds.py --seeds 10: the seed spread of the four networks (seeds.json)
  ablation  tools/ablation.py, then its multi-seed rows (ablation.json)
  bench     tools/bench.py (bench.json)
  stacks    tools/stack_run.py on the oldest and the newest stacks, where `nox` has made them
            (.nox/oldest, .nox/newest; stacks.json)
  report    tools/report.py: figures/numbers.tex, the tables and report.pdf

Each step prints a line when it starts and when it ends, and the first that fails stops the remake
with one sentence. --quick runs every step as its smoke test into DIR (default quick/), never over
the committed files.

The whole remake takes longer than one sitting (about 3.5 hours on 2 cores), so it keeps its
progress in figures/remake.json: the code it runs (a hash of Project3.py and tools/*.py) and each
finished step's seconds. --resume goes on from there with the same code: finished steps are skipped,
and an interrupted seeds step goes on from the first seed it has not recorded (seeds.py --first).

The runs that earlier recipes left in seeds.json (seeds_previous, seeds_history) and ablation.json
(before_deskew) are kept, not remade: they need the code of those recipes (README, "How the
settings were chosen").
"""

import argparse
import hashlib
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
PROGRESS = "remake.json"  # in figures/: what --resume goes on from


def code_hash():
    """A hash of Project3.py and tools/*.py: the code whose numbers a remake makes."""
    digest = hashlib.sha256()
    for path in [ROOT / "Project3.py", *sorted((ROOT / "tools").glob("*.py"))]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def progress(out, args):
    """The progress to record into: a fresh one, or with --resume the one recorded for this code."""
    fresh = {"code": code_hash(), "quick": args.quick, "seconds": {}}
    if not args.resume:
        return fresh
    path = out / "figures" / PROGRESS
    recorded = P.read_results(out, PROGRESS).get("remake")
    if recorded is None:
        raise P.UserError(f"--resume: {path} records no remake to go on with.")
    if (recorded.get("code"), recorded.get("quick")) != (fresh["code"], args.quick):
        raise P.UserError(
            f"--resume: {path} records a remake of other code or settings (code "
            f"{recorded.get('code')}, quick {recorded.get('quick')}; now {fresh['code']}, quick "
            f"{args.quick}): run the remake without --resume."
        )
    return recorded


def seed_runs(out):
    """The seed runs recorded so far in seeds.json: their seeds and seconds."""
    entry = P.read_results(out, "seeds.json").get("seeds", {})
    return entry.get("seeds", []), entry.get("seconds", [])


def forget_seeds(out):
    """The seed runs of earlier code dropped, so that every seed run found later is this remake's
    (the earlier recipes' runs, seeds_previous and seeds_history, stay)."""
    recorded = P.read_results(out, "seeds.json")
    recorded.pop("seeds", None)
    P.write_results(out, recorded, "seeds.json")


def commands(step, args, out):
    """The commands of one step, each a list for subprocess."""
    python = [sys.executable]
    common = ["--out", str(out)] + ["--quick"] * args.quick
    data = ["--data", args.data] if args.data else []
    tool = {name: [*python, str(ROOT / "tools" / f"{name}.py")] for name in STEPS}
    if step == "run":
        return [[*python, str(ROOT / "Project3.py"), *common, *data]]
    if step == "seeds":
        first = ["--first", str(args.first_seed)] if args.first_seed else []
        return [[*tool["seeds"], "--seeds", str(args.n_seeds), *first, *common, *data]]
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
    parser.add_argument("--resume", action="store_true", help="go on with an interrupted remake")
    args = parser.parse_args(argv)
    out = out_dir(args.out or (str(ROOT / "quick") if args.quick else None), writing=True)
    args.n_seeds, args.first_seed = (2 if args.quick else 10), 0
    done = progress(out, args)
    steps = [step for step in STEPS if step not in args.skip]
    for number, step in enumerate(steps, 1):
        line = f"[{number}/{len(steps)}] {step}:"
        if step in done["seconds"]:
            P.print_safely(f"{line} done earlier in {done['seconds'][step]:.0f} s")
            continue
        start = time.perf_counter()
        earlier = 0  # the seconds of the seed runs an interrupted seeds step recorded
        if step == "seeds" and done.get("seeds_begun"):
            seeds, seconds = seed_runs(out)
            args.first_seed, earlier = len(seeds), sum(seconds)
        elif step == "seeds":
            forget_seeds(out)
            done["seeds_begun"] = True
        P.write_results(out, {"remake": done}, PROGRESS)
        runs = commands(step, args, out)
        if step == "seeds" and args.first_seed >= args.n_seeds:
            runs = []  # every seed was recorded before the step was marked done
        what = "no stack made by nox yet" if step == "stacks" and not runs else ""
        what = f"from seed {args.first_seed}" if step == "seeds" and args.first_seed else what
        P.print_safely(f"{line} started {what}".rstrip())
        for command in runs:
            status = subprocess.run(command, cwd=ROOT).returncode
            if status == 130:  # Ctrl-C: the step has said so in its one line
                raise Said(130)
            if status != 0:
                finished = ", ".join(name for name in STEPS if name in done["seconds"])
                finished = f"; {finished} finished, --resume goes on" if finished else ""
                raise P.UserError(
                    f"step {step} failed with status {status} (its message is above){finished}."
                )
        seconds = time.perf_counter() - start + earlier
        done["seconds"][step] = round(seconds, 1)
        P.write_results(out, {"remake": done}, PROGRESS)
        P.print_safely(f"{line} done in {seconds:.0f} s")
    remade = ", ".join(name for name in STEPS if name in done["seconds"])
    hours = sum(done["seconds"].values()) / 3600
    P.print_safely(f"remade {remade} in {out}: {hours:.1f} hours of steps")


if __name__ == "__main__":
    sys.exit(run_tool(main))
