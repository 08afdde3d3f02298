"""Seed spread: the grader's run (`python Project3.py`) repeated with seeds 0..N-1, each in a scratch
folder, recording every network's validation and test accuracy and the run's seconds. The report's
"mean +- standard deviation" numbers come from here (figures/results.json, key "seeds").

    python tools/seeds.py [--seeds 5] [--out DIR] [--quick] [--data DIR] [--device cpu|cuda]
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import P, out_dir, run_tool

NETWORKS = ("mlp_spec", "mlp_best", "cnn_spec", "cnn_best")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="number of seeds, 0 to N-1 (default 5)")
    p.add_argument("--out", help="folder whose figures/results.json receives the spread (default: the repository)")
    p.add_argument("--data", help="data folder, as for Project3.py")
    p.add_argument("--device", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="Project3.py --quick runs: a smoke test")
    args = p.parse_args(argv)
    if args.seeds < 2:
        raise P.UserError(f"--seeds must be at least 2 for a spread, found {args.seeds}.")
    out = out_dir(args.out, writing=True)
    runs = {key: dict(val=[], test=[], best_epoch=[]) for key in NETWORKS}
    seconds = []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as scratch:
            argv = ["--seed", str(seed), "--out", scratch] + ["--quick"] * args.quick
            argv += ["--data", args.data] * bool(args.data) + ["--device", args.device] * bool(args.device)
            if P.main(argv) != 0:
                raise P.UserError(f"the run with seed {seed} failed (its message is above).")
            results = json.loads((Path(scratch) / "figures" / "results.json").read_text())
        for key in NETWORKS:
            if key in results:  # Part 2 is skipped where torch is missing
                runs[key]["val"].append(results[key]["val_accuracy"])
                runs[key]["test"].append(results[key]["test_accuracy"])
                runs[key]["best_epoch"].append(results[key]["best_epoch"])
        seconds.append(round(sum(results["seconds"].values()), 1))
        print(f"seed {seed}: " + ", ".join(f"{k} val {100 * v['val'][-1]:.2f}" for k, v in runs.items() if v["val"]),
              flush=True)
    P.update_results(out, seeds=dict(seeds=list(range(args.seeds)), quick=args.quick, seconds=seconds,
                                     **{key: value for key, value in runs.items() if value["val"]}))


if __name__ == "__main__":
    sys.exit(run_tool(main))
