"""Speed, measured side by side: each measurement runs in its own process, the kinds alternate, and
each kind keeps its best round (a burst of load from elsewhere hits all kinds alike).

    python tools/bench.py [--rounds 5] [--out DIR] [--quick]

  mlp_numpy / mlp_torch   one plain SGD epoch of the 2.4 MLP (batch 256, 50000 images): Project3's numpy
                          code against the identical network in torch
  mlp_best                one 2.6 epoch: Adam, the random affine distortions, and the two evaluations
  cnn_best / cnn_plain    one 3.4 epoch (with its evaluations) against a plain PyTorch loop of the same
                          network, optimiser, schedule and distortions (torch's own random numbers)

It also prints where the grader's run spends its time, from the seconds that run recorded.
Results go to figures/results.json under "bench".
"""
import argparse
import json
import subprocess
import sys
import time

import numpy as np

from common import P, out_dir, run_tool

KINDS = ("mlp_numpy", "mlp_torch", "mlp_best", "cnn_best", "cnn_plain")


def timed(step, repeats=2):
    """Best time of `repeats` calls of step(), after one warm-up call."""
    step()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best


def worker(kind, n, data_dir):
    """One measurement in this process; returns its seconds."""
    data = P.load_data(P.find_data_dir(data_dir), ("train", "val"))
    (x, y), val = (data["train"][0][:n], data["train"][1][:n]), data["val"]
    rng = np.random.default_rng(0)
    Y = np.eye(10, dtype=np.float32)[y]
    if kind == "mlp_numpy":
        net = P.MLP(seed=0)
        return timed(lambda: P.train_epoch(net, x, Y, P.SPEC["batch"], P.SPEC["lr"], rng))
    if kind == "mlp_best":
        net, cfg = P.AdamMLP(seed=0), P.MLP_BEST

        def epoch():
            P.train_epoch(net, x, Y, cfg["batch"], cfg["lr"], rng, cfg["augment"])
            P.scores(P.mlp_log_probs(net, x[:P.TRAIN_EVAL_N]), y[:P.TRAIN_EVAL_N])
            P.scores(P.mlp_log_probs(net, val[0]), val[1])
        return timed(epoch)
    torch = P.torch
    if kind == "mlp_torch":
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.Sigmoid(), torch.nn.Linear(64, 10))
        optimizer = torch.optim.SGD(net.parameters(), lr=P.SPEC["lr"])
        loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")  # summed, like update_grad
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def epoch():
            for idx in torch.randperm(len(x)).split(P.SPEC["batch"]):
                optimizer.zero_grad()
                loss_fn(net(tx.index_select(0, idx)), ty.index_select(0, idx)).backward()
                optimizer.step()
        return timed(epoch)
    cfg = dict(P.CNN_BEST, epochs=1)
    if kind == "cnn_best":
        return timed(lambda: P.train_cnn_best(cfg, dict(train=(x, y), val=val), 0, "cpu"))
    torch.manual_seed(0)
    net = P.ConvNet()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    a = cfg["augment"]

    def epoch():  # the same work as train_cnn_best with one epoch, written as a plain PyTorch loop
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg["lr"], total_steps=-(-len(x) // cfg["batch"]))
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg["label_smoothing"])
        for idx in torch.randperm(len(x)).split(cfg["batch"]):
            B = len(idx)
            u = lambda size: 2 * torch.rand(size) - 1  # noqa: E731  (uniform in [-1, 1])
            angle, s, k = torch.deg2rad(a["rotate_deg"] * u(B)), 1 + a["scale"] * u(B), a["shear"] * u(B)
            A = s[:, None, None] * torch.stack([torch.stack([angle.cos(), angle.cos() * k - angle.sin()], -1),
                                                torch.stack([angle.sin(), angle.sin() * k + angle.cos()], -1)], -2)
            A_inv = torch.linalg.inv(A)
            theta = torch.cat([A_inv, -A_inv @ (a["shift"] * u((B, 2, 1))) / 14], 2)
            grid = torch.nn.functional.affine_grid(theta, [B, 1, 28, 28], align_corners=False)
            inputs = torch.nn.functional.grid_sample(tx[idx].reshape(B, 1, 28, 28), grid, align_corners=False)
            optimizer.zero_grad()
            loss_fn(net(inputs), ty[idx]).backward()
            optimizer.step()
            scheduler.step()
        with torch.inference_mode():
            for images, labels in ((x[:P.TRAIN_EVAL_N], y[:P.TRAIN_EVAL_N]), val):
                [net(torch.from_numpy(images[i:i + 500])).argmax(1) for i in range(0, len(images), 500)]
    return timed(epoch)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="rounds of all kinds, alternating (default 5)")
    p.add_argument("--out", help="folder whose figures/results.json receives the timings (default: the repository)")
    p.add_argument("--quick", action="store_true", help="1 round on 600 images: a smoke test")
    p.add_argument("--data", help="data folder, as for Project3.py")
    p.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=50000, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.data)))
        return
    if P.torch is None:
        raise P.UserError("the benchmark compares against torch, which is not installed here.")
    rounds, n = (1, P.QUICK["train_n"]) if args.quick else (args.rounds, 50000)
    times = {kind: [] for kind in KINDS}
    for r in range(rounds):
        for kind in KINDS:
            run = subprocess.run([sys.executable, __file__, "--worker", kind, "--n", str(n)] +
                                 ["--data", args.data] * bool(args.data), capture_output=True, text=True)
            if run.returncode != 0:
                raise P.UserError(f"the {kind} measurement failed: {(run.stderr.strip() or 'no message').splitlines()[-1]}")
            times[kind].append(float(run.stdout.strip().splitlines()[-1]))
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), flush=True)
    best = {kind: round(min(t), 4) for kind, t in times.items()}
    bench = dict(best, images=n, rounds=rounds, quick=args.quick, torch_version=P.torch.__version__,
                 threads=P.torch.get_num_threads(), numpy_over_torch=round(best["mlp_numpy"] / best["mlp_torch"], 3),
                 cnn_over_plain=round(best["cnn_best"] / best["cnn_plain"], 3))
    out = out_dir(args.out, writing=True)
    P.update_results(out, bench=bench)
    print(f"\nbest of {rounds} rounds, {n} training images, torch {bench['torch_version']} with {bench['threads']} "
          "threads:")
    print(f"  plain SGD epoch of the MLP: numpy {best['mlp_numpy']:.3f} s, torch {best['mlp_torch']:.3f} s, "
          f"ratio {bench['numpy_over_torch']:.2f} (goal <= 0.6)")
    print(f"  2.6 epoch (Adam, distortions, evaluations): {best['mlp_best']:.3f} s (goal <= 0.6)")
    print(f"  3.4 epoch: Project3 {best['cnn_best']:.3f} s, plain PyTorch loop {best['cnn_plain']:.3f} s, "
          f"ratio {bench['cnn_over_plain']:.2f} (goal <= 1)")
    seconds = P.read_results(out).get("seconds", {})
    if seconds:
        total = sum(seconds.values())
        print(f"\nwhere the grader's run spends its time (figures/results.json, {total:.0f} s in all):")
        for section, s in sorted(seconds.items(), key=lambda item: -item[1]):
            print(f"  section {section:4} {s:7.1f} s  {100 * s / total:5.1f} %")


if __name__ == "__main__":
    sys.exit(run_tool(main))
