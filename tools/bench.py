"""Speed, measured side by side: each measurement runs in its own process, the kinds alternate,
and each kind keeps its best round (a burst of load from elsewhere hits all kinds alike).

    python tools/bench.py [--rounds 5] [--out DIR] [--quick] [--busy]

  mlp_numpy / mlp_torch  one plain SGD epoch of the 2.4 MLP (batch 256, 50000 images):
                         Project3's numpy code against the identical network in torch
  mlp_best               one 2.6 epoch: Adam, the random affine distortions, two evaluations
  mlp_best_before        the same with the distortions as written before (5b28598: RandomBefore)
  distort / _before      the distortions of one 2.6 epoch alone (391 batches of 128), now and before
  gathers                their floor: the four gathers of each batch alone, indices made already
  cnn_best / cnn_plain   one 3.4 epoch (with its evaluations) against a plain PyTorch loop of
                         the same network, optimiser, schedule and distortions
  cnn_best_before        the same 3.4 epoch at the batch and peak rate before (140d3a1: 128, 0.003)

It also prints where the grader's run spends its time, from the seconds that run recorded.
Results go to figures/bench.json (key "bench"). --busy measures instead the epochs of 2.4, 2.6 and
3.4 on a quiet machine and with one core kept busy by another process, each with the default threads
and with OMP_NUM_THREADS=1 (key "bench_busy"): what a grader on a busy laptop can set.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

try:  # Ctrl-C while importing (torch takes a second or two): one line and status 130
    import numpy as np

    from common import P, out_dir, run_tool
except KeyboardInterrupt:
    print(f"{Path(__file__).name}: interrupted.", file=sys.stderr)
    sys.exit(130)

KINDS = (
    "mlp_numpy",
    "mlp_torch",
    "mlp_best",
    "mlp_best_before",
    "distort",
    "distort_before",
    "gathers",
    "cnn_best",
    "cnn_best_before",
    "cnn_plain",
)
CNN_BEFORE = {"batch": 128, "lr": 3e-3}  # 3.4's batch and peak rate before 256 and 0.004
DESCRIPTION = "Speed of the trainings, side by side, each measurement in its own process."


def timed(epoch, *inputs, repeats=2):
    """Best time of `repeats` calls of epoch(*inputs, state), after one warm-up call; state is a
    dict the calls share (the network, its optimiser), made by the first."""
    state = {}
    epoch(*inputs, state)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        epoch(*inputs, state)
        best = min(best, time.perf_counter() - start)
    return best


def worker(kind, n, data_dir):
    """One measurement in this process; returns its seconds."""
    data = P.load_data(P.find_data_dir(data_dir), ("train", "val"))
    x = data["train"][0][:n]
    y = data["train"][1][:n]
    val = data["val"]
    if kind == "mlp_numpy":
        return timed(mlp_numpy_epoch, x, y)
    if kind == "mlp_best":
        return timed(mlp_best_epoch, x, y, val, P.RandomAffine)
    if kind == "mlp_best_before":
        return timed(mlp_best_epoch, x, y, val, RandomBefore)
    if kind == "distort":
        return timed(distort_epoch, x, P.RandomAffine)
    if kind == "distort_before":
        return timed(distort_epoch, x, RandomBefore)
    if kind == "gathers":
        return timed(gathers_epoch, x)
    if kind == "mlp_torch":
        return timed(mlp_torch_epoch, x, y)
    if kind == "cnn_best":
        return timed(cnn_best_epoch, x, y, val, P.CNN_BEST)
    if kind == "cnn_best_before":
        return timed(cnn_best_epoch, x, y, val, {**P.CNN_BEST, **CNN_BEFORE})
    return timed(cnn_plain_epoch, x, y, val)


def mlp_numpy_epoch(x, y, state):
    """One plain SGD epoch of Project3's numpy MLP (2.4)."""
    if not state:
        state["net"] = P.MLP(seed=0)
        state["Y"] = np.eye(10, dtype=np.float32)[y]
        state["rng"] = np.random.default_rng(0)
    P.train_epoch(
        state["net"], x, state["Y"], batch=P.SPEC["batch"], lr=P.SPEC["lr"], rng=state["rng"]
    )


class RandomBefore(P.RandomAffine):
    """2.6's distortions as Project3.py wrote them before (5b28598): the same values, computed with
    a padded copy and four index arrays per batch (tests check that both give the same arrays)."""

    def __call__(self, images, rng):
        B = len(images)
        maps = self.maps(B, rng)
        src = (maps.reshape(2 * B, 3) @ P.PIXEL_GRID).reshape(B, 2, 784)
        src = np.clip(src + 14.5, 0, 28.999)
        corner = np.floor(src)
        wx, wy = (src - corner).transpose(1, 0, 2)
        image_starts = np.arange(0, 900 * B, 900)[:, None]
        i = (corner[:, 1] * 30 + corner[:, 0]).astype(np.intp) + image_starts
        padded = np.pad(images.reshape(B, 28, 28), ((0, 0), (1, 1), (1, 1))).ravel()
        top = padded.take(i) * (1 - wx) + padded.take(i + 1) * wx
        bottom = padded.take(i + 30) * (1 - wx) + padded.take(i + 31) * wx
        return top * (1 - wy) + bottom * wy


def distort_epoch(x, distortion, state):
    """The distortions of one 2.6 epoch alone: every image once, in batches of 128."""
    if not state:
        state["augment"] = distortion(**P.MLP_BEST["augment"])
        state["rng"] = np.random.default_rng(0)
        state["batches"] = P.batches(len(x), P.MLP_BEST["batch"], state["rng"])
    for idx in state["batches"]:
        state["augment"](x.take(idx, axis=0), state["rng"])


def gathers_epoch(x, state):
    """The floor of any gather-based bilinear distortion: per batch, the four gathers alone."""
    if not state:
        rng = np.random.default_rng(0)
        state["batches"] = P.batches(len(x), P.MLP_BEST["batch"], rng)
        state["i"] = rng.integers(0, 900 * P.MLP_BEST["batch"], (P.MLP_BEST["batch"], 784))
    for idx in state["batches"]:
        padded = np.zeros(900 * len(idx) + 31, x.dtype)
        i = state["i"][: len(idx)] % (900 * len(idx))
        for offset in (0, 1, 30, 31):
            padded[offset:].take(i)


def mlp_best_epoch(x, y, val, distortion, state):
    """One 2.6 epoch: Adam, the distortions and the two evaluations."""
    cfg = P.MLP_BEST
    if not state:
        state["net"] = P.AdamMLP(seed=0)
        state["Y"] = np.eye(10, dtype=np.float32)[y]
        state["rng"] = np.random.default_rng(0)
    net = state["net"]
    P.train_epoch(
        net,
        x,
        state["Y"],
        batch=cfg["batch"],
        lr=cfg["lr"],
        rng=state["rng"],
        augment=distortion(**cfg["augment"]),
    )
    P.accuracy_and_loss(P.mlp_log_probs(net, x[: P.TRAIN_EVAL_N]), y[: P.TRAIN_EVAL_N])
    P.accuracy_and_loss(P.mlp_log_probs(net, val[0]), val[1])


def mlp_torch_epoch(x, y, state):
    """The same network and plain SGD epoch in torch, with torch's fastest gather."""
    torch = P.torch
    if not state:
        torch.manual_seed(0)
        layers = [torch.nn.Linear(784, 64), torch.nn.Sigmoid(), torch.nn.Linear(64, 10)]
        state["net"] = torch.nn.Sequential(*layers)
        state["optimizer"] = torch.optim.SGD(state["net"].parameters(), lr=P.SPEC["lr"])
        state["loss_fn"] = torch.nn.CrossEntropyLoss(reduction="sum")  # summed, as update_grad
        state["x"] = torch.from_numpy(x)
        state["y"] = torch.from_numpy(y)
    for idx in torch.randperm(len(x)).split(P.SPEC["batch"]):
        state["optimizer"].zero_grad()
        scores = state["net"](state["x"].index_select(0, idx))
        state["loss_fn"](scores, state["y"].index_select(0, idx)).backward()
        state["optimizer"].step()


def cnn_best_epoch(x, y, val, recipe, state):
    """One 3.4 epoch of Project3 (recipe with one epoch, evaluations included)."""
    cfg = dict(recipe, epochs=1)
    P.torch.manual_seed(0)
    net = P.ConvNet()
    step = P.cnn_best_recipe(cfg, net, len(x))
    scoring = {"epochs": cfg["epochs"], "tag": "3.4", "train_eval_n": P.TRAIN_EVAL_N}
    _, best = P.train_cnn(net, {"train": (x, y), "val": val}, seed=0, **scoring, **step)
    net.load_state_dict(best["weights"])


def uniform(size):
    """Uniform in [-1, 1], from torch's own generator."""
    return 2 * P.torch.rand(size) - 1


def cnn_plain_epoch(x, y, val, state):
    """The same work as cnn_best_epoch, written as a plain PyTorch loop."""
    torch = P.torch
    cfg = P.CNN_BEST
    a = cfg["augment"]
    if not state:
        torch.manual_seed(0)
        state["net"] = P.ConvNet()
        state["x"] = torch.from_numpy(x)
        state["y"] = torch.from_numpy(y)
    net = state["net"]
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    total_steps = (len(x) + cfg["batch"] - 1) // cfg["batch"]
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg["lr"], total_steps=total_steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    for idx in torch.randperm(len(x)).split(cfg["batch"]):
        B = len(idx)
        angle = torch.deg2rad(a["rotate_deg"] * uniform(B))
        s = 1 + a["scale"] * uniform(B)
        k = a["shear"] * uniform(B)
        first_row = torch.stack([angle.cos(), angle.cos() * k - angle.sin()], -1)
        second_row = torch.stack([angle.sin(), angle.sin() * k + angle.cos()], -1)
        A = s[:, None, None] * torch.stack([first_row, second_row], -2)
        A_inv = torch.inverse(A)
        theta = torch.cat([A_inv, -A_inv @ (a["shift"] * uniform((B, 2, 1))) / 14], 2)
        grid = torch.nn.functional.affine_grid(theta, [B, 1, 28, 28], align_corners=False)
        images = state["x"][idx].reshape(B, 1, 28, 28)
        inputs = torch.nn.functional.grid_sample(images, grid, align_corners=False)
        optimizer.zero_grad()
        loss_fn(net(inputs), state["y"][idx]).backward()
        optimizer.step()
        scheduler.step()
    with torch.no_grad():
        for images, _ in ((x[: P.TRAIN_EVAL_N], y[: P.TRAIN_EVAL_N]), val):
            for start in range(0, len(images), 500):
                net(torch.from_numpy(images[start : start + 500])).argmax(1)


def measure(kind, n, data, threads=None):
    """One measurement of kind in a process of its own (with OMP_NUM_THREADS=threads, which
    OpenBLAS, MKL and torch all read, where given); returns its seconds."""
    command = [sys.executable, __file__, "--worker", kind, "--n", str(n)]
    if data:
        command += ["--data", data]
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    run = subprocess.run(command, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        last = (run.stderr.strip() or "no message").splitlines()[-1]
        raise P.UserError(f"the {kind} measurement failed: {last}")
    return float(run.stdout.strip().splitlines()[-1])


BUSY_KINDS = ("mlp_numpy", "mlp_best", "cnn_best")  # the epochs of 2.4, 2.6 and 3.4
BUSY_CONDITIONS = {  # name: (a core kept busy by another process, OMP_NUM_THREADS)
    "quiet, default threads": (False, None),
    "quiet, one thread": (False, 1),
    "one core busy, default threads": (True, None),
    "one core busy, one thread": (True, 1),
}


def busy_machine(n, data, rounds):
    """2.4's, 2.6's and 3.4's epochs on a quiet machine and with one core kept busy by another
    process (a loop in Python), each with the default threads and with one: {condition: {kind:
    best seconds}}."""
    times = {condition: {kind: [] for kind in BUSY_KINDS} for condition in BUSY_CONDITIONS}
    for r in range(rounds):
        for condition, (busy, threads) in BUSY_CONDITIONS.items():
            loop = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                for kind in BUSY_KINDS:
                    times[condition][kind].append(measure(kind, n, data, threads))
            finally:
                if loop:
                    loop.kill()
                    loop.wait()
            done = ", ".join(f"{kind} {t[-1]:.3f} s" for kind, t in times[condition].items())
            print(f"round {r + 1}/{rounds}, {condition}: {done}", flush=True)
    return {c: {k: round(min(t), 4) for k, t in kinds.items()} for c, kinds in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of all kinds (default 5)")
    parser.add_argument("--out", help="folder whose figures/bench.json receives the timings")
    parser.add_argument("--quick", action="store_true", help="1 round on 600 images: a smoke test")
    parser.add_argument("--data", help="data folder, as for Project3.py")
    parser.add_argument(
        "--busy", action="store_true", help="2.4, 2.6 and 3.4 with a core busy, and one thread"
    )
    parser.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=50000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.data)))
        return
    if args.rounds < 1:
        raise P.UserError(f"--rounds must be at least 1, found {args.rounds}.")
    if P.torch is None:
        raise P.UserError(
            f"the benchmark compares against torch, which cannot be imported ({P.TORCH_PROBLEM})."
        )
    out = out_dir(args.out, writing=True)
    results = P.read_results(out)
    P.load_data(P.find_data_dir(args.data), ("train", "val"))
    rounds = 1 if args.quick else args.rounds
    n = P.QUICK["train_n"] if args.quick else 50000
    if args.busy:
        busy = dict(busy_machine(n, args.data, rounds), images=n, rounds=rounds, quick=args.quick)
        recorded = P.read_results(out, "bench.json")
        P.write_results(out, name="bench.json", results={**recorded, "bench_busy": busy})
        return
    times = {kind: [] for kind in KINDS}
    for r in range(rounds):
        for kind in KINDS:
            times[kind].append(measure(kind, n, args.data))
        done = ", ".join(f"{kind} {t[-1]:.3f} s" for kind, t in times.items())
        print(f"round {r + 1}/{rounds}: {done}", flush=True)
    best = {kind: round(min(t), 4) for kind, t in times.items()}
    bench = dict(
        best,
        images=n,
        rounds=rounds,
        quick=args.quick,
        torch_version=P.torch.__version__,
        threads=P.torch.get_num_threads(),
        numpy_over_torch=round(best["mlp_numpy"] / best["mlp_torch"], 3),
        cnn_over_plain=round(best["cnn_best"] / best["cnn_plain"], 3),
        spread={kind: [round(min(t), 4), round(max(t), 4)] for kind, t in times.items()},
    )
    P.write_results(
        out, name="bench.json", results={**P.read_results(out, "bench.json"), "bench": bench}
    )
    print(
        f"\nbest of {rounds} rounds, {n} training images, torch {bench['torch_version']} with "
        f"{bench['threads']} threads:"
    )
    print(
        f"  plain SGD epoch of the MLP: numpy {best['mlp_numpy']:.3f} s, torch "
        f"{best['mlp_torch']:.3f} s, ratio {bench['numpy_over_torch']:.2f}"
    )
    print(
        f"  2.6 epoch (Adam, distortions, evaluations): {best['mlp_best']:.3f} s, before "
        f"{best['mlp_best_before']:.3f} s"
    )
    print(
        f"  2.6's distortions alone: {best['distort']:.3f} s, before {best['distort_before']:.3f} "
        f"s; their four gathers alone (the floor): {best['gathers']:.3f} s"
    )
    print(
        f"  3.4 epoch: Project3 {best['cnn_best']:.3f} s, plain PyTorch loop "
        f"{best['cnn_plain']:.3f} s, ratio {bench['cnn_over_plain']:.2f}; at batch "
        f"{CNN_BEFORE['batch']} (before) {best['cnn_best_before']:.3f} s"
    )
    seconds = results.get("seconds", {})
    if seconds:
        total = sum(seconds.values())
        print(f"\nwhere the grader's run spends its time (results.json, {total:.0f} s in all):")
        for section, s in sorted(seconds.items(), key=by_seconds, reverse=True):
            print(f"  section {section:4} {s:7.1f} s  {100 * s / total:5.1f} %")


def by_seconds(item):
    return item[1]


if __name__ == "__main__":
    sys.exit(run_tool(main))
