"""Seed spread: the grader's run (`python Project3.py`) repeated with seeds 0..N-1, each in a
scratch folder, recording every network's validation and test accuracy, its best epoch and its
recipe's epochs, and the run's seconds. The report's "mean +- standard deviation" numbers come from
here (figures/seeds.json, key "seeds").

    python tools/seeds.py [--seeds 5] [--first K] [--out DIR] [--quick] [--data DIR]
                          [--device cpu|cuda]

--first K runs seeds K..N-1 only and adds them to the seeds 0..K-1 already recorded, so that more
seeds cost only their own runs (the runs are deterministic: seed k gives the same numbers again).
--keep-previous NOTE, when a recipe has changed, keeps the runs being replaced (every network's, or
with --section that network's) under "seeds_previous", with NOTE for each under "notes", beside the
earlier recipes kept there, so that the report compares the two recipes.
--section S (2.5, 2.6, 3.2 or 3.4), after a change to that section's recipe alone, repeats only that
section for the recorded seeds and replaces only its network's runs; the whole runs' seconds, no
longer those of the code, are dropped (stacks.json and results.json time whole runs). With --first K
it goes on with an interrupted --section run from seed K.
"""

import argparse
import copy
import sys
import tempfile
from pathlib import Path

try:  # Ctrl-C while importing (torch takes a second or two): one line and status 130
    from common import P, Said, out_dir, run_results, run_tool
except KeyboardInterrupt:
    print(f"{Path(__file__).name}: interrupted.", file=sys.stderr)
    sys.exit(130)

NETWORKS = [key for key, _, _ in P.NETWORKS]  # the four networks of Table 1
SECTION_NETWORK = {"2.5": "mlp_spec", "2.6": "mlp_best", "3.2": "cnn_spec", "3.4": "cnn_best"}
DESCRIPTION = "The grader's run repeated with seeds 0..N-1: the report's seed spread."


def parse_args(argv):
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 to N-1 (default 5)")
    parser.add_argument("--first", type=int, default=0, help="add seeds K..N-1 to 0..K-1")
    parser.add_argument("--out", help="folder whose figures/seeds.json receives the spread")
    parser.add_argument("--data", help="data folder, as for Project3.py")
    parser.add_argument("--device", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="--quick runs: a smoke test")
    parser.add_argument("--keep-previous", metavar="NOTE", help="keep the replaced record")
    parser.add_argument("--section", choices=sorted(SECTION_NETWORK), help="repeat this one only")
    return parser.parse_args(argv)


def run_seed(seed, args, scratch):
    """The grader's run with this seed in the folder scratch; returns its results."""
    argv = ["--seed", str(seed), "--out", str(scratch)]
    if args.section:
        argv += ["--section", args.section]
    if args.quick:
        argv.append("--quick")
    if args.data:
        argv += ["--data", args.data]
    if args.device:
        argv += ["--device", args.device]
    status = P.main(argv)
    if status == 130:  # Ctrl-C inside the run, which has said so: this tool stops the same way
        raise Said(130)
    if status != 0:
        raise P.UserError(f"the run with seed {seed} failed (its message is above).")
    return run_results(Path(scratch))


def recorded_runs(results, args):
    """The seed runs to add to: none, or with --first K those of seeds 0..K-1 already recorded."""
    runs = {key: {"val": [], "test": [], "best_epoch": []} for key in NETWORKS}
    seconds = []
    if args.first == 0:
        return runs, seconds
    recorded = results.get("seeds", {})
    if recorded.get("seeds") != list(range(args.first)) or recorded.get("quick") != args.quick:
        raise P.UserError(
            f"--first {args.first} adds to seeds 0..{args.first - 1}, but seeds.json records "
            f"seeds {recorded.get('seeds')} (quick: {recorded.get('quick')})."
        )
    for key in NETWORKS:
        if key in recorded:
            runs[key] = {what: list(recorded[key][what]) for what in runs[key]}
    return runs, list(recorded["seconds"])


def section_runs(recorded, args):
    """--section: the recorded runs of seeds 0..N-1, with the section's network's emptied; with
    --first K, the same of an interrupted --section run, whose network has seeds 0..K-1 already."""
    section_key = SECTION_NETWORK[args.section]
    counts = {key: len(recorded[key]["val"]) for key in NETWORKS if key in recorded}
    whole = all(n == args.seeds for key, n in counts.items() if key != section_key)
    begun = not args.first or counts.get(section_key, 0) == args.first
    if recorded.get("seeds") != list(range(args.first or args.seeds)) or not whole or not begun:
        raise P.UserError(
            f"--section {args.section} replaces one network's runs of seeds 0..{args.seeds - 1}"
            + (f" from seed {args.first} on" if args.first else "")
            + f", but seeds.json records seeds {recorded.get('seeds')} with {counts} runs."
        )
    runs = {key: {"val": [], "test": [], "best_epoch": []} for key in NETWORKS}
    for key in NETWORKS:
        if key in recorded and (key != section_key or args.first):
            runs[key] = copy.deepcopy(recorded[key])
    return runs


def main(argv=None):
    args = parse_args(argv)
    if args.seeds < 2 or not 0 <= args.first < args.seeds:
        raise P.UserError(
            f"--seeds must be at least 2 and --first below it, found {args.seeds} and {args.first}."
        )
    out = out_dir(args.out, writing=True)  # checked before the first seed, not after the last
    recorded = P.read_results(out, "seeds.json")
    before = recorded.get("seeds", {})
    if args.keep_previous:
        if "seeds" not in recorded or args.first:
            raise P.UserError(
                "--keep-previous needs a record in seeds.json to keep, and no --first."
            )
        section_key = SECTION_NETWORK.get(args.section)  # None: every network is rerun
        replaced = [key for key in NETWORKS if key in before and section_key in (None, key)]
        kept = recorded.get("seeds_previous", {})  # other networks' earlier recipes stay
        notes = {**kept.get("notes", {}), **dict.fromkeys(replaced, args.keep_previous)}
        entry = {"seeds": before["seeds"], "quick": before["quick"], "notes": notes}
        recorded["seeds_previous"] = {**kept, **{key: before[key] for key in replaced}, **entry}
    if args.section:
        runs = section_runs(before, args)
        seconds = None
    else:
        runs, seconds = recorded_runs(recorded, args)
    P.load_data(P.find_data_dir(args.data))
    for seed in range(args.first, args.seeds):
        with tempfile.TemporaryDirectory() as scratch:
            results = run_seed(seed, args, scratch)
        for key in NETWORKS:
            if key in results:  # Part 2 is skipped where torch is missing
                runs[key]["val"].append(results[key]["val_accuracy"])
                runs[key]["test"].append(results[key]["test_accuracy"])
                runs[key]["best_epoch"].append(results[key]["best_epoch"])
                runs[key]["epochs"] = results[key]["epochs"]  # the recipe's: the same every seed
        if seconds is not None:
            seconds.append(round(sum(results["seconds"].values()), 1))
        done = [key for key in NETWORKS if key in results]  # this seed's networks
        accuracies = [f"{key} val {100 * runs[key]['val'][-1]:.2f}" for key in done]
        print(f"seed {seed}: " + ", ".join(accuracies), flush=True)
        spread = {key: value for key, value in runs.items() if value["val"]}
        entry = {"seeds": list(range(seed + 1)), "quick": args.quick}
        if seconds is not None:
            entry["seconds"] = seconds
        recorded["seeds"] = {**entry, **spread}
        P.write_results(out, name="seeds.json", results=recorded)  # after every seed


if __name__ == "__main__":
    sys.exit(run_tool(main))
