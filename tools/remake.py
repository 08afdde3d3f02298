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

The whole remake takes hours on 2 cores, longer than a sitting may last, so it keeps its
progress in figures/remake.json: the code it runs (a hash of Project3.py and the tools that train
and time) and each finished step's seconds. --resume goes on from there with the same code: finished
steps are skipped, an interrupted seeds step goes on from the first seed it has not recorded
(seeds.py --first), an interrupted ablation step with the rows it has not recorded.

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
    import ablation

    from common import ROOT, P, Said, out_dir, run_tool
except KeyboardInterrupt:
    print(f"{Path(__file__).name}: interrupted.", file=sys.stderr)
    sys.exit(130)

STEPS = ("run", "seeds", "ablation", "bench", "stacks", "report")
# The rows rerun over seeds 1-4 beside seed 0's
MULTI_SEED_ROWS = ["mlp_averaging", "cnn_deskew", "cnn_sgd_augment"]
MORE_SEEDS = ["1", "2", "3", "4"]
# The steps that record run by run, each in its file under these keys: what --resume goes on from
RESUMABLE = {
    "seeds": ("seeds.json", ["seeds"]),
    "ablation": ("ablation.json", ["ablation", "ablation_seeds"]),
}
STACKS = {"oldest_stack": ".nox/oldest", "newest_stack": ".nox/newest"}
PROGRESS = "remake.json"  # in figures/: what --resume goes on from


# The code whose numbers and seconds a remake records (the report's tools only format them)
TRAINING_CODE = ["Project3.py"] + [
    f"tools/{name}.py" for name in ("common", "seeds", "ablation", "bench", "stack_run")
]


def code_hash():
    """A hash of TRAINING_CODE: a resumed remake must run the code that began it."""
    digest = hashlib.sha256()
    for name in TRAINING_CODE:
        digest.update((ROOT / name).read_bytes())
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


def recorded_runs(out, step):
    """What an interrupted seeds or ablation step has recorded so far: (seeds recorded, their
    seconds and the rows')."""
    if step == "seeds":
        entry = P.read_results(out, "seeds.json").get("seeds", {})
        return len(entry.get("seeds", [])), sum(entry.get("seconds", []))
    recorded = P.read_results(out, "ablation.json")
    rows = [*recorded.get("ablation", {}).values(), *recorded.get("ablation_seeds", {}).values()]
    return 0, sum(row["seconds"] for row in rows)


def forget(out, step):
    """The step's runs of earlier code dropped from its file, so that every run found there later
    is this remake's (the earlier recipes' runs, under other keys, stay)."""
    name, keys = RESUMABLE[step]
    recorded = P.read_results(out, name)
    for key in keys:
        recorded.pop(key, None)
    P.write_results(out, recorded, name)


def ablation_left(out):
    """The ablation rows not yet recorded: (rows of seed 0, multi-seed rows with a seed missing)."""
    recorded = P.read_results(out, "ablation.json")
    single = [key for key, *_ in ablation.ROWS if key not in recorded.get("ablation", {})]
    runs = recorded.get("ablation_seeds", {})
    multi = [k for k in MULTI_SEED_ROWS if any(f"{k}/seed{s}" not in runs for s in MORE_SEEDS)]
    return single, multi


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
    if step == "ablation":  # seed 0's rows, then the multi-seed rows' other seeds
        single, multi = args.ablation_left
        rows = [[], ["--seeds", *MORE_SEEDS]]
        return [
            [*tool["ablation"], *more, "--rows", *left, *common, *data]
            for more, left in zip(rows, (single, multi))
            if left
        ]
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
        resumed = done.get(f"{step}_begun", False)  # an interrupted seeds or ablation step
        if step in RESUMABLE and not resumed:
            forget(out, step)
            done[f"{step}_begun"] = True
        args.first_seed, earlier = recorded_runs(out, step) if resumed else (0, 0)
        if step == "ablation":
            args.ablation_left = ablation_left(out)
        P.write_results(out, {"remake": done}, PROGRESS)
        runs = commands(step, args, out)
        if step == "seeds" and args.first_seed >= args.n_seeds:
            runs = []  # every seed was recorded before the step was marked done
        what = "no stack made by nox yet" if step == "stacks" and not runs else ""
        if resumed:
            left = f"seed {args.first_seed}" if step == "seeds" else "the rows not recorded"
            what = f"again, from {left}"
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
