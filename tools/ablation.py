"""Variants of the trainings of 2.5-2.6 and 3.2-3.4, each trained once (seed 0) and scored on the
validation split only (the test split is not even loaded): the report's ablation tables.

    python tools/ablation.py [--which mlp|cnn|both] [--out DIR] [--quick] [--data DIR] [--device cpu|cuda]

Each row records its best validation accuracy (and epoch) and its last; the report sets them against
the seed spread of the chosen recipe (tools/seeds.py) and the binomial error of 5000 images.
"""
import argparse
import sys
import time

import numpy as np

from common import P, out_dir, run_tool

SHIFTS_ONLY = dict(rotate_deg=0.0, scale=0.0, shear=0.0, shift=1.5)
ROWS = (  # (key, group, what changes): MLP rows change MLP_BEST or the specified SGD, CNN rows CNN_BEST or 3.2's
    ("mlp_no_augment", "mlp_best", "no distortions", dict(augment=None)),
    ("mlp_shifts", "mlp_best", "shifts of up to 1.5 pixels only", dict(augment=SHIFTS_ONLY)),
    ("mlp_strong", "mlp_best", "the CNN's stronger distortions", dict(augment=P.CNN_BEST["augment"])),
    ("mlp_sgd_augment", "mlp_best", "plain SGD (lr 0.001, batch 256) with the distortions",
     dict(sgd=True, batch=256, lr=0.001)),
    ("mlp_spec_long", "mlp_spec", "as specified, 600 epochs", dict(epochs=600)),
    ("cnn_no_augment", "cnn_best", "no distortions", dict(augment=None)),
    ("cnn_no_smoothing", "cnn_best", "no label smoothing", dict(label_smoothing=0.0)),
    ("cnn_35_epochs", "cnn_best", "35 epochs", dict(epochs=35)),
    ("cnn_momentum_mean", "cnn_spec", "SGD with momentum 0.9 on the mean loss (the tutorial's)",
     dict(momentum=0.9, reduction="mean")),
    ("cnn_momentum_sum", "cnn_spec", "SGD with momentum 0.9 on the summed loss", dict(momentum=0.9)),
    ("cnn_spec_long", "cnn_spec", "as specified, 40 epochs", dict(epochs=40)),
)


def train(group, change, data, seed, device, quick):
    """The history of one variant: the recipe of `group` with `change` applied."""
    epochs = dict(epochs=P.QUICK["epochs"]) if quick else {}
    if group == "mlp_spec":
        cfg = {**P.MLP_STUDY, "epochs": P.MLP_STUDY["epochs_full"], **change, **epochs}
        return P.train_mlp(P.MLP(seed=seed), data, cfg["epochs"], P.SPEC["batch"], P.SPEC["lr"], seed, group)[0]
    if group == "mlp_best":
        cfg = {**P.MLP_BEST, **change, **epochs}
        net = P.MLP(seed=seed) if cfg.get("sgd") else P.AdamMLP(seed=seed)
        return P.train_mlp(net, data, cfg["epochs"], cfg["batch"], cfg["lr"], seed, group,
                           None if cfg.get("sgd") else cfg["lr_final"], cfg["augment"], P.TRAIN_EVAL_N)[0]
    if group == "cnn_best":
        return P.train_cnn_best({**P.CNN_BEST, **change, **epochs}, data, seed, device)[1]
    cfg = {"epochs": P.CNN_STUDY["epochs_full"], "momentum": 0.0, "reduction": "sum", **change, **epochs}
    P.torch.manual_seed(seed)
    net = P.ConvNet().to(device)
    optimizer = P.torch.optim.SGD(net.parameters(), lr=P.SPEC["lr"], momentum=cfg["momentum"])
    loss_fn = P.torch.nn.CrossEntropyLoss(reduction=cfg["reduction"])
    return P.train_cnn(net, data, cfg["epochs"], P.SPEC["batch"], optimizer, loss_fn, seed, group)[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--which", choices=["mlp", "cnn", "both"], default="both")
    p.add_argument("--out", help="folder whose figures/results.json receives the rows (default: the repository)")
    p.add_argument("--data", help="data folder, as for Project3.py")
    p.add_argument("--device", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="a few hundred images and 2 epochs per row: a smoke test")
    args = p.parse_args(argv)
    rows = [row for row in ROWS if args.which in ("both", row[1][:3])]
    if P.torch is None and any(group.startswith("cnn") for _, group, _, _ in rows):
        raise P.UserError("the CNN rows need PyTorch, which is not installed here (use --which mlp).")
    device = args.device or ("cuda" if P.torch is not None and P.torch.cuda.is_available() else "cpu")
    data = P.load_data(P.find_data_dir(args.data), ("train", "val"))  # validation only: no test split
    if args.quick:
        data = {s: (x[:P.QUICK[f"{s}_n"]], y[:P.QUICK[f"{s}_n"]]) for s, (x, y) in data.items()}
    out = out_dir(args.out, writing=True)
    if args.which != "cnn":  # 2.8: how often 2.6's distortions put ink on pixels blank in every training image
        x = data["train"][0]
        blank = x.max(axis=0) == 0
        distorted = P.augment_affine(x[:10000], np.random.default_rng(0), **P.MLP_BEST["augment"])
        inked = distorted[:, blank] > 0.01
        P.update_results(out, distortions=dict(images=len(distorted), blank_pixels=int(blank.sum()),
                                               images_inking_blank=float(inked.any(axis=1).mean()),
                                               per_blank_pixel=float(inked.mean())))
    for key, group, variant, change in rows:
        start = time.perf_counter()
        history = train(group, change, data, 0, device, args.quick)
        val = history["val_acc"]
        row = dict(group=group, variant=variant, epochs=len(val), best_val_accuracy=max(val),
                   final_train_accuracy=history["train_acc"][-1],
                   best_epoch=val.index(max(val)) + 1, final_val_accuracy=val[-1], val_n=len(data["val"][1]),
                   seconds=round(time.perf_counter() - start, 1), device=device if group[:3] == "cnn" else "cpu",
                   quick=args.quick)
        P.update_results(out, merge=True, ablation={key: row})
        print(f"{key}: best val {100 * max(val):.2f} % (epoch {row['best_epoch']}/{len(val)}), "
              f"last {100 * val[-1]:.2f} %, {row['seconds']} s", flush=True)


if __name__ == "__main__":
    sys.exit(run_tool(main))
