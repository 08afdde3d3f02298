"""Variants of the trainings of 2.5-2.6 and 3.2-3.4, each trained once (seed 0) and scored on the
validation split only (the test split is not even loaded): the report's ablation tables.

    python tools/ablation.py [--which mlp|cnn|both] [--out DIR] [--quick] [--data DIR]
                             [--device cpu|cuda]

Each row records its best validation accuracy (and epoch) and its last; the report sets them
against the seed spread of the chosen recipe (tools/seeds.py).
"""

import argparse
import sys
import time
from pathlib import Path

try:  # Ctrl-C while importing (torch takes a second or two): one line and status 130
    import numpy as np

    from common import P, out_dir, pick_device, run_tool
except KeyboardInterrupt:
    print(f"{Path(__file__).name}: interrupted.", file=sys.stderr)
    sys.exit(130)

DESCRIPTION = "Variants of the 2.5-2.6 and 3.2-3.4 trainings, scored on validation only."

ELASTIC = {"elastic_alpha": 34.0, "elastic_sigma": 4.0}  # Simard et al. 2003's, for MNIST
EMA_DECAYS = (0.999, 0.9998)  # weight averages measured beside every mlp_best and cnn_best row
# (key, group, what changes, the change): MLP rows change the 2.6 recipe (mlp_best) or the
# specified training (mlp_spec), CNN rows the 3.4 recipe (cnn_best) or 3.2's training (cnn_spec).
ROWS = (
    ("mlp_no_augment", "mlp_best", "no distortions", {"augment": None}),
    (
        "mlp_sgd_augment",
        "mlp_best",
        "plain SGD (lr 0.001, batch 256)",
        {"sgd": True, "batch": 256, "lr": 0.001},
    ),
    (
        "mlp_elastic",
        "mlp_best",
        "elastic distortions too",
        {"augment": {**P.MLP_BEST["augment"], **ELASTIC}},
    ),
    # The recipe itself, its weights averaged beside (WeightAverages): no comparison of its own.
    ("mlp_averaging", "mlp_best", "the recipe; its weights averaged beside", {}),
    ("mlp_spec_long", "mlp_spec", "as specified, 600 epochs", {"epochs": 600}),
    ("cnn_no_augment", "cnn_best", "no distortions", {"augment": None}),
    (
        "cnn_sgd_augment",
        "cnn_best",
        "the specified SGD",
        {"sgd": True},
    ),
    (
        "cnn_momentum_mean",
        "cnn_spec",
        "momentum 0.9, mean loss (the tutorial's)",
        {"momentum": 0.9, "reduction": "mean"},
    ),
    (
        "cnn_momentum_sum",
        "cnn_spec",
        "momentum 0.9, summed loss",
        {"momentum": 0.9},
    ),
    ("cnn_spec_long", "cnn_spec", "as specified, 40 epochs", {"epochs": 40}),
    ("cnn_deskew", "cnn_best", "deskewed images, as 2.6", {"deskew": True}),
    (
        "cnn_elastic",
        "cnn_best",
        "elastic distortions too",
        {"augment": {**P.CNN_BEST["augment"], **ELASTIC}},
    ),
)


class ElasticAffine(P.RandomAffine):
    """2.6's affine distortions followed by an elastic one (Simard et al., 2003): a random field of
    displacements, uniform in -1..1 at every pixel, smoothed by a Gaussian of elastic_sigma pixels
    and scaled by elastic_alpha, one field per image and call (the elastic rows)."""

    def __init__(self, elastic_alpha, elastic_sigma, **affine):
        super().__init__(**affine)
        self.alpha = elastic_alpha
        d = np.arange(28)[:, None] - np.arange(28)  # G @ field @ G smooths a field (G = G.T)
        gaussian = np.exp(-(d**2) / (2 * elastic_sigma**2)) / (np.sqrt(2 * np.pi) * elastic_sigma)
        self.G = gaussian.astype(np.float32)

    def displacements(self, B, rng):
        """B elastic fields (B, 2, 784) of x and y displacements, in pixels."""
        field = rng.uniform(-1, 1, (2 * B * 28, 28)).astype(np.float32) @ self.G  # along x
        field = field.reshape(2 * B, 28, 28).transpose(0, 2, 1).reshape(-1, 28) @ self.G  # y
        return self.alpha * field.reshape(2 * B, 28, 28).transpose(0, 2, 1).reshape(B, 2, 784)

    def __call__(self, images, rng):
        B = len(images)
        src = (self.maps(B, rng).reshape(2 * B, 3) @ P.PIXEL_GRID).reshape(B, 2, 784)
        return P.sample_bilinear(images, src + self.displacements(B, rng))


class ElasticAffineTorch(ElasticAffine):
    """ElasticAffine applied by torch, as RandomAffineTorch applies RandomAffine."""

    def __call__(self, images, rng):
        torch, F = P.torch, P.F
        theta = torch.from_numpy(self.maps(len(images), rng)).to(images.device)
        theta[:, :, 2] /= 14  # affine_grid's units: the image spans -1 to 1
        grid = F.affine_grid(theta, [len(images), 1, 28, 28], align_corners=False)
        field = torch.from_numpy(self.displacements(len(images), rng)).to(images.device)
        grid = grid + field.reshape(-1, 2, 28, 28).permute(0, 2, 3, 1) / 14  # (B, 28, 28, 2)
        distorted = F.grid_sample(images.reshape(-1, 1, 28, 28), grid, align_corners=False)
        return distorted.reshape(-1, 784)


def distortions(augment, on_torch=False):
    """The distortions of a recipe's augment settings: RandomAffine's, or with elastic ones."""
    if augment is None:
        return None
    if "elastic_alpha" in augment:
        return (ElasticAffineTorch if on_torch else ElasticAffine)(**augment)
    return (P.RandomAffineTorch if on_torch else P.RandomAffine)(**augment)


class WeightAverages:
    """Exponential moving averages of a network's weights over its training steps, one for each
    decay, scored on the validation split at the end of every epoch: weight averaging measured
    beside the raw weights of the same training. params() gives the network's weights (arrays or
    tensors, updated in place by each step); score(weights) the validation accuracy of a set."""

    def __init__(self, params, score, steps_per_epoch):
        self.params, self.score, self.steps_per_epoch = params, score, steps_per_epoch
        self.averages = {d: {k: v * 1 for k, v in params().items()} for d in EMA_DECAYS}
        self.val_acc = {d: [] for d in EMA_DECAYS}
        self.steps = 0

    def step(self):
        self.steps += 1
        for decay, average in self.averages.items():
            for name, theta in self.params().items():
                average[name] += (1 - decay) * (theta - average[name])
        if self.steps % self.steps_per_epoch == 0:
            for decay, average in self.averages.items():
                self.val_acc[decay].append(round(self.score(average), 5))

    def summary(self):
        """Each decay's best validation accuracy and its epoch."""
        return {
            str(d): {"best_val_accuracy": max(acc), "best_epoch": acc.index(max(acc)) + 1}
            for d, acc in self.val_acc.items()
        }


class AveragedAdamMLP(P.AdamMLP):
    """AdamMLP whose every step also updates its WeightAverages (set by track)."""

    def track(self, val, steps_per_epoch):
        scorer = P.MLP()

        def score(weights):
            for name, theta in scorer.params().items():
                theta[...] = weights[name]
            return P.accuracy_and_loss(P.mlp_log_probs(scorer, val[0]), val[1])[0]

        self.averages = WeightAverages(self.params, score, steps_per_epoch)

    def update_params(self, lr):
        super().update_params(lr)
        self.averages.step()


class AveragingScheduler:
    """A learning-rate scheduler whose every step also updates WeightAverages."""

    def __init__(self, scheduler, averages):
        self.scheduler, self.averages = scheduler, averages

    def step(self):
        self.scheduler.step()
        self.averages.step()


def train(group, change, data, seed, device, quick):
    """The history of one variant: the recipe of `group` with `change` applied."""
    epochs = {"epochs": P.QUICK["epochs"]} if quick else {}
    if group == "mlp_spec":
        cfg = {"epochs": P.MLP_STUDY["epochs_full"], **change, **epochs}
        history, _ = P.train_mlp(
            P.MLP(seed=seed),
            data,
            epochs=cfg["epochs"],
            batch=P.SPEC["batch"],
            lr=P.SPEC["lr"],
            seed=seed,
            tag=group,
        )
        return history, {}
    if group == "mlp_best":
        cfg = {**P.MLP_BEST, **change, **epochs}
        seen = as_read(data, cfg.get("deskew", False))
        sgd = cfg.get("sgd", False)
        net = P.MLP(seed=seed) if sgd else AveragedAdamMLP(seed=seed)
        if not sgd:
            net.track(seen["val"], steps_per_epoch=-(-len(seen["train"][0]) // cfg["batch"]))
        history, _ = P.train_mlp(
            net,
            seen,
            epochs=cfg["epochs"],
            batch=cfg["batch"],
            lr=cfg["lr"],
            seed=seed,
            tag=group,
            lr_final=None if sgd else cfg["lr_final"],
            augment=distortions(cfg["augment"]),
            train_eval_n=P.TRAIN_EVAL_N,
        )
        return history, {} if sgd else {"ema": net.averages.summary()}
    if group == "cnn_best" and change.get("sgd"):  # 3.2's training, with 3.4's distortions
        cfg = {**P.CNN_BEST, **epochs}
        P.torch.manual_seed(seed)
        net = P.ConvNet().to(device)
        history, _ = P.train_cnn(
            net,
            data,
            epochs=cfg["epochs"],
            batch=P.SPEC["batch"],
            optimizer=P.torch.optim.SGD(net.parameters(), lr=P.SPEC["lr"]),
            loss_fn=P.torch.nn.CrossEntropyLoss(reduction="sum"),
            seed=seed,
            tag=group,
            augment=P.RandomAffineTorch(**cfg["augment"]),
            train_eval_n=P.TRAIN_EVAL_N,
        )
        return history, {}
    if group == "cnn_best":  # 3.4's training, its scheduler's steps also averaging the weights
        cfg = {**P.CNN_BEST, **change, **epochs}
        seen = as_read(data, cfg.get("deskew", False))
        P.torch.manual_seed(seed)
        net = P.ConvNet().to(device)
        recipe = P.cnn_best_recipe({**cfg, "augment": None}, net, len(seen["train"][0]))
        recipe["augment"] = distortions(cfg["augment"], on_torch=True)
        scorer = P.ConvNet().to(device)

        def score(weights):
            scorer.load_state_dict(weights)
            return P.accuracy_and_loss(P.cnn_log_probs(scorer, seen["val"][0]), seen["val"][1])[0]

        steps_per_epoch = -(-len(seen["train"][0]) // cfg["batch"])
        params = lambda: {k: v.detach() for k, v in net.state_dict(keep_vars=True).items()}  # noqa: E731
        averages = WeightAverages(params, score, steps_per_epoch)
        recipe["scheduler"] = AveragingScheduler(recipe["scheduler"], averages)
        history, _ = P.train_cnn(
            net,
            seen,
            epochs=cfg["epochs"],
            seed=seed,
            tag=group,
            train_eval_n=P.TRAIN_EVAL_N,
            **recipe,
        )
        return history, {"ema": averages.summary()}
    # cnn_spec: the training of 3.2, with the tutorial's momentum or mean loss as variants
    cfg = {"epochs": P.CNN_STUDY["epochs_full"], "momentum": 0.0, "reduction": "sum"}
    cfg.update(change, **epochs)
    P.torch.manual_seed(seed)
    net = P.ConvNet().to(device)
    optimizer = P.torch.optim.SGD(net.parameters(), lr=P.SPEC["lr"], momentum=cfg["momentum"])
    history, _ = P.train_cnn(
        net,
        data,
        epochs=cfg["epochs"],
        batch=P.SPEC["batch"],
        optimizer=optimizer,
        loss_fn=P.torch.nn.CrossEntropyLoss(reduction=cfg["reduction"]),
        seed=seed,
        tag=group,
    )
    return history, {}


def as_read(data, deskewed):
    """The splits as a network reads them: deskewed (2.6, the cnn_deskew row) or as given."""
    return {split: (P.deskew(x), y) for split, (x, y) in data.items()} if deskewed else data


def ink_on_blank_pixels(x):
    """2.8: how often 2.6's distortions put ink on pixels that are blank in every training image."""
    x = P.deskew(x) if P.MLP_BEST["deskew"] else x  # as the 2.6 network reads them
    blank = x.max(axis=0) == 0
    distort = P.RandomAffine(**P.MLP_BEST["augment"])
    distorted = distort(x[:10000], np.random.default_rng(0))
    inked = distorted[:, blank] > 0.01
    return {
        "images": len(distorted),
        "blank_pixels": int(blank.sum()),
        "images_inking_blank": float(inked.any(axis=1).mean()),
        "per_blank_pixel": float(inked.mean()),
    }


def paired_small_run(data, small):
    """2.5's 2000-image run (the grader's, results entry `small`) repeated with its seed, keeping
    each validation image's answer at the epoch of lowest validation loss and at the last: the
    counts for McNemar's paired test of the two accuracies (tools/report.py)."""
    history = small["history"]
    epochs = (int(np.argmin(history["val_loss"])) + 1, len(history["val_loss"]))  # 1, 2, ...
    x, y = (array[: small["train_n"]] for array in data["train"])
    x_val, y_val = data["val"]
    net = P.MLP(seed=small["seed"])
    rng = np.random.default_rng(small["seed"])  # as train_mlp draws the batches
    right = {}
    for epoch in range(1, epochs[1] + 1):
        P.train_epoch(
            net, x, np.eye(10, dtype=np.float32)[y], batch=P.SPEC["batch"], lr=P.SPEC["lr"], rng=rng
        )
        if epoch in epochs:
            right[epoch] = P.mlp_log_probs(net, x_val).argmax(axis=1) == y_val
    first, last = right[epochs[0]], right[epochs[1]]
    recorded = [history["val_acc"][epoch - 1] for epoch in epochs]
    if [round(float(r.mean()), 5) for r in (first, last)] != recorded:
        raise P.UserError(
            "the repeated 2000-image run does not give results.json's validation accuracies "
            f"{recorded}: rerun `python Project3.py --section 2.5` with this code and data."
        )
    return {
        "epochs": list(epochs),
        "val_n": len(y_val),
        "right_both": int((first & last).sum()),
        "right_first_only": int((first & ~last).sum()),
        "right_last_only": int((~first & last).sum()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--which", choices=["mlp", "cnn", "both"], default="both")
    parser.add_argument("--out", help="folder whose figures/ablation.json receives the rows")
    parser.add_argument("--data", help="data folder, as for Project3.py")
    parser.add_argument("--device", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="600 images, 2 epochs: a smoke test")
    parser.add_argument("--rows", nargs="+", choices=[row[0] for row in ROWS], help="only these")
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0],
        help="seeds of each row (default 0: the tables' single runs); other seeds go to the key "
        "ablation_seeds, one entry per row and seed, for comparing means",
    )
    args = parser.parse_args(argv)
    rows = [row for row in ROWS if args.which in ("both", row[1][:3])]
    if args.rows:
        rows = [row for row in rows if row[0] in args.rows]
    runs_cnn = any(group.startswith("cnn") for _, group, _, _ in rows)
    device = pick_device(args.device, needs_torch=runs_cnn)  # the CNN rows need torch
    out = out_dir(args.out, writing=True)
    recorded = P.read_results(out, "ablation.json")
    data = P.load_data(P.find_data_dir(args.data), ("train", "val"))  # validation only
    if args.quick:
        for split, n in (("train", P.QUICK["train_n"]), ("val", P.QUICK["val_n"])):
            data[split] = (data[split][0][:n], data[split][1][:n])
    if args.which != "cnn" and args.seeds == [0]:
        recorded["distortions"] = ink_on_blank_pixels(data["train"][0])
        small = P.read_results(out).get("mlp_spec_2000")
        if small:  # the grader's run is there to repeat
            recorded["mlp_small_paired"] = paired_small_run(data, small)
        P.write_results(out, name="ablation.json", results=recorded)
    for (key, group, variant, change), seed in [(row, seed) for row in rows for seed in args.seeds]:
        start = time.perf_counter()
        history, extra = train(group, change, data, seed, device, args.quick)
        val = history["val_acc"]
        row = {
            "group": group,
            "variant": variant,
            "epochs": len(val),
            "best_val_accuracy": max(val),
            "best_epoch": val.index(max(val)) + 1,
            "final_val_accuracy": val[-1],
            "final_train_accuracy": history["train_acc"][-1],
            "val_n": len(data["val"][1]),
            "seconds": round(time.perf_counter() - start, 1),
            "device": device if group.startswith("cnn") else "cpu",
            "quick": args.quick,
            **extra,
        }
        if args.seeds == [0]:
            recorded["ablation"] = {**recorded.get("ablation", {}), key: row}
        else:
            runs = recorded.get("ablation_seeds", {})
            recorded["ablation_seeds"] = {**runs, f"{key}/seed{seed}": {**row, "seed": seed}}
        P.write_results(
            out, name="ablation.json", results=recorded
        )  # after every row: none is lost
        print(
            f"{key} (seed {seed}): best val {100 * max(val):.2f} % "
            f"(epoch {row['best_epoch']}/{len(val)}), "
            f"last {100 * val[-1]:.2f} %, {row['seconds']} s; averaged weights: "
            + ", ".join(
                f"{d} {100 * e['best_val_accuracy']:.2f} %" for d, e in extra.get("ema", {}).items()
            ),
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(run_tool(main))
