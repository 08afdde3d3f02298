"""Project 3: MNIST digits with a multi-layer perceptron in numpy and a CNN in PyTorch.

Put this file beside the data folder Project3_data (or Project3_Data) and run

    python Project3.py                the whole assignment: sections 2.5-2.8, then 3.1-3.4
    python Project3.py --part mlp     Part 1 only (numpy, matplotlib, time: no torch needed)
    python Project3.py --part cnn     Part 2 only
    python Project3.py --section 2.7  one section (2.7, 2.8 and 3.3 build on the saved outputs)
    python Project3.py --quick        every section on a few hundred images, in seconds
    python Project3.py --part eval    the saved networks of 2.6 and 3.4 on the test split (JSON)

Figures go to figures/, weights to weights/ and every number to figures/results.json, beside this
file (or under --out). The sections below follow the report's. It runs on Python 3.8-3.13 with
numpy 1.19 or newer, matplotlib 3.3 or newer and torch 1.7 or newer.

From the standard library: argparse (the command line), json (results.json), pathlib (paths) and
sys (stderr and the exit status).
"""

import argparse
import json
import sys
import time
from pathlib import Path

try:
    import matplotlib
    import matplotlib.pyplot as plt
    import numpy as np

    try:  # Part 2 only: Part 1 runs where torch is missing or broken
        import torch
        import torch.nn.functional as F

        torch.from_numpy(np.zeros(1))  # a torch built for another numpy fails here, not in 3.2
    except Exception as error:  # not installed, a broken install, a missing library: no Part 2
        torch = None
        F = None
        TORCH_PROBLEM = f"{type(error).__name__}: {error}"
    else:
        TORCH_PROBLEM = None
except ImportError as error:  # numpy or matplotlib: the whole assignment needs them
    print(f"Project3.py: error: numpy and matplotlib are needed ({error}).", file=sys.stderr)
    sys.exit(2)
except KeyboardInterrupt:  # Ctrl-C during the slow imports: the same one line as later on
    print(
        "Project3.py: interrupted before the first section; nothing was written.", file=sys.stderr
    )
    sys.exit(130)

Module = object if torch is None else torch.nn.Module  # the base class of the CNN of Part 2
HERE = Path(__file__).resolve().parent  # the data folder and the outputs are found beside this file
plt.switch_backend("Agg")  # figures go to files; nothing waits for a window
plt.rcParams.update(
    {
        "font.size": 8,  # 8 pt as printed in the report
        "axes.titlesize": 8,
        "legend.fontsize": 8,
        "axes.formatter.min_exponent": 4,  # log axes read 0.05, 0.1, 0.2 rather than 5x10^-2
    }
)


class UserError(Exception):
    """Something the user can fix (data, weights, options, disk): one sentence, exit status 2."""


def say(text):
    """print(), except that a closed or full stdout (`| head`, a full disk) silences the rest of
    the run's output instead of stopping the run."""
    if sys.stdout is None:
        return
    try:
        print(text, flush=True)
    except OSError:  # BrokenPipeError, or no space left on the device
        sys.stdout = None


# ==== Configuration: every number a run depends on. ==============================================

SPEC = {  # 2.4 and 3.2, as the assignment gives them
    "batch": 256,  # images per gradient step
    "lr": 0.001,  # multiplies the gradient of the loss summed over the batch, in both parts
}
MLP_STUDY = {  # 2.5: the specified training on the first 2000 images, then on all of them
    "small_n": 2000,  # the assignment's "first 2000 images"
    "epochs_small": 1470,  # 1470 epochs x 8 steps: as many steps (11,760) as the run on 50000
    "epochs_full": 60,  # 60 epochs x 196 steps; the curves still rise (600 epochs: report, 2.5)
}
MLP_BEST = {  # 2.6: the same network trained better; each value chosen on the validation split
    "epochs": 100,  # best epochs 61-88 over 5 seeds; 200 epochs did no better (98.32 %)
    "batch": 128,  # batch 64 (at lr 0.002) scored lower on validation: 98.16 against 98.32 %
    "lr": 3e-3,  # Adam's learning rate in the first epoch of the cosine decay (get_lr)
    "lr_final": 2e-5,  # ... decaying towards this
    "augment": {  # random affine distortions of each training image, drawn afresh every time
        "rotate_deg": 8.0,  # rotation by up to +-8 degrees
        "scale": 0.08,  # scaling by 1 +- 0.08
        "shear": 0.10,  # horizontal shear by up to +-0.10
        "shift": 1.5,  # shift by up to +-1.5 pixels in each direction
    },
}
CNN_STUDY = {  # 3.2-3.3: the specified training of the CNN
    "small_n": 2000,  # the first 2000 images, as in 2.5
    "epochs_small": 150,  # 1200 steps: validation has long stopped improving
    "epochs_full": 15,  # 2940 steps; validation has levelled off (40 epochs: report, 3.2)
}
CNN_BEST = {  # 3.4: the template CNN trained better; each value chosen on the validation split
    "epochs": 50,  # best epochs 35-45 over 5 seeds; 35 epochs did as well (report, 3.4)
    "batch": 128,  # as in 2.6
    "lr": 3e-3,  # the peak of Adam's one-cycle learning rate
    "label_smoothing": 0.05,  # the target puts 1 - 0.05 * 0.9 on the true digit; 0.1 was no better
    "augment": {  # stronger than 2.6's: lighter ones scored 99.30 % on validation against 99.50 %
        "rotate_deg": 12.0,
        "scale": 0.10,
        "shear": 0.15,
        "shift": 2.5,
    },
}
TRAIN_EVAL_N = 5000  # 2.6 and 3.4 measure training accuracy on the first 5000 images, for speed
QUICK = {  # --quick: every code path in seconds, into quick/
    "train_n": 600,  # training images
    "val_n": 300,  # validation images (the test split is read whole)
    "epochs": 2,  # for every training
}
NETWORKS = (  # (results key, name, the accuracy above which each point is extra credit)
    ("mlp_spec", "MLP as specified (2.5)", None),
    ("mlp_best", "MLP trained better (2.6)", 90),
    ("cnn_spec", "CNN as specified (3.2)", None),
    ("cnn_best", "CNN trained better (3.4)", 98),
)
CREDIT_FLOOR = -20  # the assignment takes off a point per point below the base, down to 20 below

# ==== Data: the three splits, checked and scaled alike before anything is trained. ===============
# (The readers of .npy and .npz files are under "Files and faults", near the end.)


def find_data_dir(given=None):
    """--data if given, else Project3_data (or Project3_Data) beside this file, else in the working
    folder, as the assignment's relative paths expect."""
    if given is not None:
        if not Path(given).is_dir():
            raise UserError(
                f"data folder {given} does not exist or is not a folder (given with --data)."
            )
        return Path(given)
    for base in (HERE, Path.cwd()):
        for name in ("Project3_data", "Project3_Data"):
            if (base / name).is_dir():
                return base / name
    raise UserError(
        f"no data folder found: expected Project3_data or Project3_Data beside "
        f"{HERE / 'Project3.py'} or in {Path.cwd()} (or pass --data DIR)."
    )


def load_data(folder, splits=("train", "val", "test")):
    """{split: (images float32 (N, 784) in [0, 1], labels int64 (N,))}, every file checked first.

    The scale is decided once from the largest pixel M over all splits read, whatever their dtype:
    M <= 1 means images in [0, 1] already; 128 <= M <= 255 means grey levels, divided by 255.
    Anything else (a negative pixel, 1 < M < 128, M > 255, or splits that disagree) is refused.
    """
    raw = {split: read_split(folder, split) for split in splits}
    largest = {split: float(images.max()) for split, (images, _) in raw.items()}
    smallest = min(float(images.min()) for images, _ in raw.values())
    high = max(largest.values())
    splits_disagree = min(largest.values()) <= 1 < high
    if smallest < 0 or 1 < high < 128 or high > 255 or splits_disagree:
        raise UserError(
            f"{folder}: pixels range from {smallest:g} to {high:g}, so their scale is in doubt "
            f"(largest per split: {largest}); expected all in [0, 1] (largest at most 1) or all "
            "grey levels 0-255 (largest at least 128)."
        )
    scale = 255 if high > 1 else 1
    return {
        split: (images.astype(np.float32) / scale, labels)
        for split, (images, labels) in raw.items()
    }


def read_split(folder, split):
    """The images (N, 784) and labels (N,) of one split, as stored; anything malformed is
    refused."""
    image_path = folder / f"MNIST_{split}_images.npy"
    label_path = folder / f"MNIST_{split}_labels.npy"
    images = read_npy(image_path, kinds="uif", what="pixels")
    labels = read_npy(label_path, kinds="ui", what="labels")
    if images.ndim == 3 and images.shape[1:] == (28, 28):
        images = images.reshape(len(images), 784)
    if images.ndim != 2 or images.shape[1] != 784:
        raise UserError(
            f"{image_path}: expected images of shape (N, 784) or (N, 28, 28), found {images.shape}."
        )
    if len(images) == 0:
        raise UserError(f"{image_path}: the {split} split is empty (0 images).")
    if not np.isfinite(images).all():
        bad = np.count_nonzero(~np.isfinite(images))
        raise UserError(f"{image_path}: {bad} pixels are NaN or infinite.")
    if not images.any():
        raise UserError(f"{image_path}: every pixel is 0, so there is no digit to see.")
    if labels.shape != (len(images),):
        raise UserError(
            f"{label_path}: expected {len(images)} labels, one per image in {image_path.name}, "
            f"found an array of shape {labels.shape}."
        )
    if labels.min() < 0 or labels.max() > 9:
        raise UserError(
            f"{label_path}: labels must lie in 0-9, found values from {labels.min()} to "
            f"{labels.max()}."
        )
    return images, labels.astype(np.int64)


# ==== 2.1-2.3 The MLP: 784 -> 64 sigmoid -> 10 softmax, back-propagation by hand. ================


def sigmoid(a):
    return 0.5 * (1 + np.tanh(0.5 * a))  # = 1 / (1 + e^-a), without overflow for large |a|


def softmax(a):
    e = np.exp(a - a.max(axis=-1, keepdims=True))  # shifting by the max keeps exp() <= 1
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(a):
    shifted = a - a.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class MLP:
    """y_hat = softmax(W2 sigmoid(W1 x + b1) + b2) for one image x (784,) or a batch (B, 784).

    A batch holds one image per row, so a1 = x @ W1.T + b1 is a1 = W1 x + b1 for every row x.
    """

    def __init__(self, n_in=784, n_hidden=64, n_out=10, seed=None):
        rng = np.random.default_rng(seed)  # 2.2: weights ~ N(0, 0.1^2), biases 0
        self.W1 = (0.1 * rng.standard_normal((n_hidden, n_in))).astype(np.float32)
        self.b1 = np.zeros(n_hidden, dtype=np.float32)
        self.W2 = (0.1 * rng.standard_normal((n_out, n_hidden))).astype(np.float32)
        self.b2 = np.zeros(n_out, dtype=np.float32)
        self.reset_grad()

    def params(self):
        return {"W1": self.W1, "b1": self.b1, "W2": self.W2, "b2": self.b2}

    def forward(self, x):
        """2.1: y_hat for x, keeping every intermediate for update_grad."""
        x = np.asarray(x, dtype=self.W1.dtype)  # float32 here; float64 for the gradient checks
        self.single = x.ndim == 1
        self.x = x.reshape(1, -1) if self.single else x
        self.a1 = self.x @ self.W1.T + self.b1  # a1 = W1 x + b1
        self.f1 = sigmoid(self.a1)  # f1 = sigma(a1)
        self.a2 = self.f1 @ self.W2.T + self.b2  # a2 = W2 f1 + b2
        self.y_hat = softmax(self.a2)  # y_hat = softmax(a2)
        if self.single:
            return self.y_hat[0]
        return self.y_hat

    def loss(self, y):
        """The loss that update_grad differentiates: cross-entropy -sum y log y_hat of the last
        forward pass, summed over its images, from a2 (log-softmax), so that it stays finite where
        y_hat underflows to 0. (Training needs only its gradient; the gradient checks use it.)"""
        return float(-(np.reshape(y, self.a2.shape) * log_softmax(self.a2)).sum())

    def reset_grad(self):
        """2.3.2: the gradients that update_grad adds to, set to zero."""
        self.W1_grad = np.zeros_like(self.W1)
        self.b1_grad = np.zeros_like(self.b1)
        self.W2_grad = np.zeros_like(self.W2)
        self.b2_grad = np.zeros_like(self.b2)

    def update_grad(self, y):
        """2.3.2: add dL/dtheta of the last forward pass's cross-entropy, summed over its images.

        Each line is a chain rule of 2.3.1 for row vectors, stacked over the batch (a row an image):
          dL/da2 = y_hat - y
          dL/db2 = dL/da2 . da2/db2  (= I)                  -> summed over the rows
          dL/dW2 = dL/da2 . da2/dW2  (= I kron f1^T)        -> (dL/da2)^T f1
          dL/df1 = dL/da2 . da2/df1  (= W2)
          dL/da1 = dL/df1 . df1/da1  (= diag(f1 (1 - f1)))
          dL/db1 = dL/da1 . da1/db1  (= I)                  -> summed over the rows
          dL/dW1 = dL/da1 . da1/dW1  (= I kron x^T)         -> (dL/da1)^T x
        """
        dL_da2 = self.y_hat - np.reshape(y, self.y_hat.shape)
        self.b2_grad += dL_da2.sum(axis=0)
        self.W2_grad += dL_da2.T @ self.f1
        dL_df1 = dL_da2 @ self.W2
        dL_da1 = dL_df1 * self.f1 * (1 - self.f1)
        self.b1_grad += dL_da1.sum(axis=0)
        self.W1_grad += dL_da1.T @ self.x

    def update_params(self, lr):
        """One plain gradient step: theta <- theta - lr dL/dtheta."""
        self.W1 -= lr * self.W1_grad
        self.b1 -= lr * self.b1_grad
        self.W2 -= lr * self.W2_grad
        self.b2 -= lr * self.b2_grad

    def save(self, path):
        write_arrays(path, self.params())

    @classmethod
    def load(cls, path):
        """Weights written by save(); missing, damaged, mis-shaped or non-finite ones are
        refused."""
        net = cls()
        shapes = {name: theta.shape for name, theta in net.params().items()}
        for name, theta in read_arrays(path, shapes, what="MLP", part="mlp").items():
            setattr(net, name, theta)
        return net


# ==== 2.4 Training: mini-batch SGD, the four calls in order; scores after every epoch. ==========


def batches(n, batch, rng):
    """One epoch's mini-batches: a fresh random order of the n images, cut into pieces."""
    order = rng.permutation(n)
    return [order[start : start + batch] for start in range(0, n, batch)]


def train_epoch(net, x, Y, *, batch, lr, rng, augment=None):
    """One pass over the images x (one-hot targets Y) in random mini-batches; returns the steps."""
    minibatches = batches(len(x), batch, rng)
    for idx in minibatches:
        x_batch = x.take(idx, axis=0)
        if augment is not None:  # 2.6: a fresh random distortion of every image
            x_batch = augment_affine(x_batch, rng, **augment)
        net.reset_grad()
        net.forward(x_batch)
        net.update_grad(Y[idx])
        net.update_params(lr)
    return len(minibatches)


def mlp_log_probs(net, x, chunk=10000):
    """log y_hat of every image in x, a chunk at a time."""
    log_probs = []
    for start in range(0, len(x), chunk):
        net.forward(x[start : start + chunk])
        log_probs.append(log_softmax(net.a2))
    return np.concatenate(log_probs)


def accuracy_and_loss(log_probs, y):
    """(accuracy, mean cross-entropy) from log-probabilities (N, 10) and the true digits (N,)."""
    accuracy = float(np.mean(log_probs.argmax(axis=1) == y))
    cross_entropy = float(-log_probs[np.arange(len(y)), y].mean())
    return accuracy, cross_entropy


def record_epoch(history, *, tag, epoch, epochs, steps, train, val, start):
    """Record and print an epoch's (accuracy, loss) on training and validation images; returns
    True if its validation accuracy is the best so far."""
    best_before = max(history.get("val_acc", [-1]))
    values = {
        "step": steps,
        "train_acc": train[0],
        "train_loss": train[1],
        "val_acc": val[0],
        "val_loss": val[1],
    }
    for key, value in values.items():
        history.setdefault(key, []).append(round(value, 5))
    elapsed = time.perf_counter() - start
    remaining = elapsed / epoch * (epochs - epoch)
    say(
        f"[{tag}] epoch {epoch}/{epochs}  train {100 * train[0]:.2f}%  val {100 * val[0]:.2f}%  "
        f"{elapsed:.1f}s, ETA {remaining:.0f}s"
    )
    return history["val_acc"][-1] > best_before


def get_lr(epoch, epochs, *, lr, lr_final=None):
    """The learning rate of an epoch (1 to epochs): constant (2.4), or with lr_final the cosine
    decay of 2.6 from lr in the first epoch towards lr_final (Loshchilov and Hutter, 2017)."""
    if lr_final is None:
        return lr
    # A numpy float64: numpy 2 then takes 2.6's Adam step in float64 before it stores the float32
    # weights, numpy 1 in float32, so the two differ in the last digits of the weights.
    progress = (epoch - 1) / epochs
    return lr_final + (lr - lr_final) * (1 + np.cos(np.pi * progress)) / 2


def train_mlp(
    net, data, *, epochs, batch, lr, seed, tag, lr_final=None, augment=None, train_eval_n=None
):
    """Train net in place on data["train"], scoring the training images (or the first
    train_eval_n) and data["val"] after every epoch. Returns the history of the epochs and the
    weights of the epoch with the best validation accuracy."""
    x, y = data["train"]
    Y = np.eye(10, dtype=np.float32)[y]  # one-hot targets
    rng = np.random.default_rng(seed)
    history = {}
    best = None
    start = time.perf_counter()
    steps = 0
    for epoch in range(1, epochs + 1):
        lr_now = get_lr(epoch, epochs, lr=lr, lr_final=lr_final)
        steps += train_epoch(net, x, Y, batch=batch, lr=lr_now, rng=rng, augment=augment)
        train = accuracy_and_loss(mlp_log_probs(net, x[:train_eval_n]), y[:train_eval_n])
        val = accuracy_and_loss(mlp_log_probs(net, data["val"][0]), data["val"][1])
        is_best = record_epoch(
            history,
            tag=tag,
            epoch=epoch,
            epochs=epochs,
            steps=steps,
            train=train,
            val=val,
            start=start,
        )
        if is_best:
            params = {name: theta.copy() for name, theta in net.params().items()}
            best = {"val_acc": history["val_acc"][-1], "params": params}
    return history, best


def summary(history, start, seed, **entries):
    """What results.json keeps of a training run: its history and the numbers the report quotes.
    val_accuracy, among the entries, is the validation accuracy of the weights that were kept."""
    return {
        "seed": seed,
        "epochs": len(history["step"]),
        "steps": history["step"][-1],
        "final_train_accuracy": history["train_acc"][-1],
        "final_val_accuracy": history["val_acc"][-1],
        "best_val_accuracy": max(history["val_acc"]),
        "best_epoch": int(np.argmax(history["val_acc"])) + 1,
        "train_seconds": round(time.perf_counter() - start, 1),
        "history": history,
        **entries,
    }


def test_scores(log_probs, test):
    """The test accuracy of a network whose training is over: the test split never enters
    train_mlp or train_cnn, so it chooses nothing."""
    return {"test_accuracy": accuracy_and_loss(log_probs, test[1])[0], "test_n": len(test[1])}


# ==== 2.5 Over-fitting? The specified training on the first 2000 images, then on all 50000. ======


def study_size(n, small_n, quick):
    """How many images the small run of 2.5 and 3.3 takes: the first small_n (a third with --quick,
    or where the training split holds fewer than three times small_n)."""
    if quick:
        return n // 3
    return min(small_n, n // 3)


def plot_curves(runs, *, title, out, name, accuracy_from=50, train_label="training images"):
    """Accuracy and loss against gradient steps, a row per run, on shared axes so that the runs
    compare by eye."""
    fig, axes = plt.subplots(
        len(runs),
        2,
        figsize=(6.3, 0.45 + 1.6 * len(runs)),
        sharex=True,
        sharey="col",
        squeeze=False,
    )
    for (label, history), row in zip(runs, axes):
        for ax, what, scale in zip(row, ("acc", "loss"), (100, 1)):
            ax.plot(history["step"], scale * np.array(history[f"train_{what}"]), label=train_label)
            ax.plot(
                history["step"], scale * np.array(history[f"val_{what}"]), label="validation images"
            )
            ax.grid(alpha=0.3)
        row[0].set(title=f"{label}: accuracy", ylabel="accuracy (%)", ylim=(accuracy_from, 100.3))
        row[1].set(title=f"{label}: loss", ylabel="cross-entropy per image", yscale="log")
    for ax in axes[-1]:
        ax.set_xlabel("gradient steps")
    axes[0, 0].legend(loc="lower right")
    fig.suptitle(title, fontsize=8.5)
    fig.tight_layout()
    save_figure(fig, out, name)


def section_2_5(data, args):
    """The specified training (2.4) on the first 2000 images, then on all 50000; the same number
    of steps each, from the same initial weights."""
    x, y = data["train"]
    small_n = study_size(len(x), MLP_STUDY["small_n"], args.quick)
    measured = {}
    runs = []
    for key, n, epochs in (
        ("mlp_spec_2000", small_n, MLP_STUDY["epochs_small"]),
        ("mlp_spec", len(x), MLP_STUDY["epochs_full"]),
    ):
        if args.quick:
            epochs = QUICK["epochs"]
        start = time.perf_counter()
        net = MLP(seed=args.seed)
        history, _ = train_mlp(
            net,
            {"train": (x[:n], y[:n]), "val": data["val"]},
            epochs=epochs,
            batch=SPEC["batch"],
            lr=SPEC["lr"],
            seed=args.seed,
            tag=f"2.5, {n} images",
        )
        final_val = history["val_acc"][-1]
        measured[key] = summary(history, start, args.seed, train_n=n, val_accuracy=final_val)
        which = "first" if n < len(x) else "all"
        runs.append((f"{which} {n} images, {epochs} epochs", history))
        if key == "mlp_spec":  # the network trained on all the images is the one kept
            net.save(args.out / "weights" / "mlp_spec.npz")
            test_log_probs = mlp_log_probs(net, data["test"][0])
            measured[key].update(test_scores(test_log_probs, data["test"]))
    title = f"MLP: SGD, learning rate {SPEC['lr']} on the summed loss, batch {SPEC['batch']}"
    plot_curves(runs, title=title, out=args.out, name="mlp_study")
    return measured


# ==== 2.6 How well does it work? The same network, trained better. ===============================
# The recipe: Adam (AdamMLP below) with the cosine learning-rate decay of get_lr (2.4), and random
# affine distortions of every training image (random_affine, augment_affine); the checkpoint of
# the best validation epoch is kept.


class AdamMLP(MLP):
    """The same network; update_params takes an Adam step (Kingma and Ba, 2015)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.t = 0  # steps taken
        self.m = {name: np.zeros_like(theta) for name, theta in self.params().items()}  # E[g]
        self.v = {name: np.zeros_like(theta) for name, theta in self.params().items()}  # E[g^2]

    def update_params(self, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.t += 1
        for name, theta in self.params().items():
            g = getattr(self, f"{name}_grad")
            self.m[name] += (1 - beta1) * (g - self.m[name])  # m <- beta1 m + (1 - beta1) g
            self.v[name] += (1 - beta2) * (g * g - self.v[name])  # v <- beta2 v + (1 - beta2) g^2
            m_hat = self.m[name] / (1 - beta1**self.t)  # the running means without their bias
            v_hat = self.v[name] / (1 - beta2**self.t)  # towards the zeros they start from
            theta -= lr * m_hat / (np.sqrt(v_hat) + eps)


PIXEL_GRID = np.stack(
    [
        np.tile(np.arange(28) - 13.5, 28),  # x of each pixel, about the image centre
        np.repeat(np.arange(28) - 13.5, 28),  # y
        np.ones(784),  # 1, for the shift
    ]
).astype(np.float32)


def random_affine(B, rng, rotate_deg, scale, shear, shift):
    """B random affine maps (B, 2, 3), float32, in pixels about the image centre: output pixel p
    reads the input at A^-1 (p - t), A rotating by up to rotate_deg degrees, scaling by 1 +- scale
    and shearing by up to +-shear, t a shift of up to +-shift pixels. 3.4 draws its maps here
    too."""
    angle = np.deg2rad(rng.uniform(-rotate_deg, rotate_deg, B))
    s = 1 + rng.uniform(-scale, scale, B)
    k = rng.uniform(-shear, shear, B)
    t = rng.uniform(-shift, shift, (B, 2, 1))
    cos = np.cos(angle)
    sin = np.sin(angle)
    first_row = np.stack([cos, cos * k - sin], -1)
    second_row = np.stack([sin, sin * k + cos], -1)
    A = s[:, None, None] * np.stack([first_row, second_row], -2)
    A_inv = np.linalg.inv(A)
    return np.concatenate([A_inv, -A_inv @ t], axis=2).astype(np.float32)


def augment_affine(images, rng, **distortion):
    """Random affine distortions of a batch (B, 784) of 28x28 images, bilinear interpolation."""
    B = len(images)
    maps = random_affine(B, rng, **distortion)
    src = (maps.reshape(2 * B, 3) @ PIXEL_GRID).reshape(B, 2, 784)  # where each pixel reads
    src = np.clip(src + 14.5, 0, 28.999)  # pixel indices, +1 into the image padded with zeros
    corner = np.floor(src)
    wx, wy = (src - corner).transpose(1, 0, 2)  # bilinear weights
    image_starts = np.arange(0, 900 * B, 900)[:, None]  # each padded image is 30 x 30
    i = (corner[:, 1] * 30 + corner[:, 0]).astype(np.intp) + image_starts
    padded = np.pad(images.reshape(B, 28, 28), ((0, 0), (1, 1), (1, 1))).ravel()
    top = padded.take(i) * (1 - wx) + padded.take(i + 1) * wx
    bottom = padded.take(i + 30) * (1 - wx) + padded.take(i + 31) * wx
    return top * (1 - wy) + bottom * wy


def section_2_6(data, args):
    """The 2.6 recipe on all 50000 images; the best validation epoch's weights are kept."""
    cfg = dict(MLP_BEST, epochs=QUICK["epochs"]) if args.quick else MLP_BEST
    start = time.perf_counter()
    net = AdamMLP(seed=args.seed)
    history, best = train_mlp(
        net,
        data,
        epochs=cfg["epochs"],
        batch=cfg["batch"],
        lr=cfg["lr"],
        seed=args.seed,
        tag="2.6",
        lr_final=cfg["lr_final"],
        augment=cfg["augment"],
        train_eval_n=TRAIN_EVAL_N,
    )
    for name, theta in net.params().items():
        theta[...] = best["params"][name]  # the weights of the best epoch on validation
    net.save(args.out / "weights" / "mlp.npz")
    title = "MLP of 2.6: Adam, cosine learning-rate decay, random affine distortions"
    runs = [(f"{cfg['epochs']} epochs", history)]
    train_label = f"first {TRAIN_EVAL_N} training images"
    plot_curves(
        runs,
        title=title,
        out=args.out,
        name="mlp_best_training",
        accuracy_from=90,
        train_label=train_label,
    )
    test_log_probs = mlp_log_probs(net, data["test"][0])
    entry = summary(history, start, args.seed, val_accuracy=best["val_acc"], config=cfg)
    entry.update(test_scores(test_log_probs, data["test"]))
    return {"mlp_best": entry}


# ==== 2.7 Where does it make mistakes? (The CNN of 3.4 too.) =====================================


def confusion_matrix(y, predicted):
    """C[i, j]: the images of digit i predicted as j."""
    C = np.zeros((10, 10), dtype=np.int64)
    np.add.at(C, (y, predicted), 1)
    return C


def confusion_section(key, *, predicted, test, out, title):
    """The 10x10 confusion matrix on the test split, and the test images behind its largest
    off-diagonal counts; returns the matrix and what the report quotes of it."""
    x, y = test
    C = confusion_matrix(y, predicted)
    mistakes = [(-int(C[i, j]), i, j) for i in range(10) for j in range(10) if i != j and C[i, j]]
    pairs = [(-minus_count, i, j) for minus_count, i, j in sorted(mistakes)]  # ties: by digit
    plot_confusion(C, out=out, name=f"{key}_confusion", title=title)
    plot_mistakes(
        pairs[:6], test=test, predicted=predicted, out=out, name=f"{key}_mistakes", title=title
    )
    per_class = np.diag(C) / np.maximum(C.sum(axis=1), 1)
    top = [{"true": i, "predicted": j, "count": count} for count, i, j in pairs[:8]]
    entry = {
        "matrix": C.tolist(),
        "per_class_accuracy": per_class.round(4).tolist(),
        "top_confusions": top,
    }
    return {f"{key}_confusion": entry}


def plot_confusion(C, *, out, name, title):
    fig, ax = plt.subplots(figsize=(3.3, 3.15))
    ax.imshow(np.log1p(C), cmap="Blues")  # log scale: the mistakes show beside the diagonal
    for i, j in np.ndindex(C.shape):
        ax.text(j, i, C[i, j], ha="center", va="center", color="white" if i == j else "black")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted digit", ylabel="true digit")
    ax.set_title(title)
    save_figure(fig, out, name)


def plot_mistakes(pairs, *, test, predicted, out, name, title):
    """Up to 6 test images of each confusion (count, true digit, predicted digit) in pairs."""
    x, y = test
    no_ticks = {"xticks": [], "yticks": [], "frame_on": False}
    fig, axes = plt.subplots(6, 6, figsize=(3.2, 3.4), subplot_kw=no_ticks)
    for row, (count, i, j) in zip(axes, pairs):
        for ax, k in zip(row, np.flatnonzero((y == i) & (predicted == j))):
            ax.imshow(x[k].reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
        row[0].set_ylabel(f"{i}$\\to${j} ({count})", rotation=0, ha="right", va="center")
    fig.suptitle(f"{title}: mistakes, true$\\to$predicted (count)", fontsize=8)
    save_figure(fig, out, name)


def section_2_7(data, args):
    """The confusion matrix of the 2.6 network (weights/mlp.npz) on the test split."""
    net = MLP.load(args.out / "weights" / "mlp.npz")
    predicted = mlp_log_probs(net, data["test"][0]).argmax(axis=1)
    return confusion_section(
        "mlp", predicted=predicted, test=data["test"], out=args.out, title="MLP of 2.6"
    )


# ==== 2.8 The rows of W1 as 28x28 templates, as specified (2.5) and trained better (2.6). ========


def rms(w):
    """The root-mean-square of the weights w; None (null in results.json) if there are none."""
    if w.size == 0:
        return None
    return float(np.sqrt(np.mean(w**2)))


def section_2_8(data, args):
    """The 64 rows of W1 of both networks as an 8x8 grid of 28x28 tiles, each tile on its own
    symmetric colour scale;
    and the size of the weights on pixels that no training image inks, against the others."""
    weights = args.out / "weights"
    nets = {
        "mlp_spec": MLP.load(weights / "mlp_spec.npz"),
        "mlp_best": MLP.load(weights / "mlp.npz"),
    }
    names = ("as specified (2.5)", "trained better (2.6)")
    fig, panels = plt.subplots(1, 2, figsize=(6.3, 3.3))
    for ax, net, name in zip(panels, nets.values(), names):
        tiles = net.W1 / np.abs(net.W1).max(axis=1, keepdims=True)  # each row on its own scale
        tiles = tiles.reshape(8, 8, 28, 28)
        tiles = np.pad(tiles, ((0, 0), (0, 0), (0, 1), (0, 1)), constant_values=np.nan)  # gaps
        mosaic = tiles.transpose(0, 2, 1, 3).reshape(8 * 29, 8 * 29)
        ax.imshow(mosaic, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_axis_off()
        ax.set_title(f"the 64 rows of $W_1$, {name}")
    save_figure(fig, args.out, "mlp_templates")
    blank = data["train"][0].max(axis=0) == 0  # pixels that are 0 in every training image
    initial = MLP(seed=args.seed).W1  # where both networks started (2.2)
    entry = {"blank_pixels": int(blank.sum())}
    for key, net in nets.items():
        entry[key] = {
            "rms_blank": rms(net.W1[:, blank]),
            "rms_inked": rms(net.W1[:, ~blank]),
            "rms_change_inked": rms(net.W1[:, ~blank] - initial[:, ~blank]),  # what training added
        }
    return {"mlp_templates": entry}


# ==== 3.1 The template CNN. =====================================================================


class ConvNet(Module):
    """The template network: layers and forward() copied from the PyTorch tutorial "Training a
    classifier" (pytorch.org/tutorials/beginner/blitz/cifar10_tutorial.html), changed for one input
    channel and 28x28 images (so fc1 has 16x4x4 inputs)."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 6, 5)  # 1x28x28 -> 6x24x24
        self.pool = torch.nn.MaxPool2d(2, 2)  # halves height and width
        self.conv2 = torch.nn.Conv2d(6, 16, 5)  # 6x12x12 -> 16x8x8
        self.fc1 = torch.nn.Linear(16 * 4 * 4, 120)  # after the second pooling: 16x4x4
        self.fc2 = torch.nn.Linear(120, 84)
        self.fc3 = torch.nn.Linear(84, 10)

    def forward(self, x):
        """Flat images (B, 784) -> class scores (B, 10); the softmax is inside the loss."""
        x = x.reshape(-1, 1, 28, 28)
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def forward_steps(net):
    """forward()'s steps as (name, module) pairs, in order (a test checks that replaying them gives
    what forward() gives)."""
    relu = torch.nn.ReLU()
    return [
        ("conv1", net.conv1),
        ("relu", relu),
        ("pool", net.pool),
        ("conv2", net.conv2),
        ("relu", relu),
        ("pool", net.pool),
        ("flatten", torch.nn.Flatten()),
        ("fc1", net.fc1),
        ("relu", relu),
        ("fc2", net.fc2),
        ("relu", relu),
        ("fc3", net.fc3),
    ]


def section_3_1(data, args):
    """The steps of forward(), replayed one by one on a blank image: each step's settings, shapes
    and parameters."""
    net = ConvNet()
    x = torch.zeros(1, 1, 28, 28)
    rows = []
    for name, layer in forward_steps(net):
        shape_in = list(x.shape[1:])
        x = layer(x)
        row = {
            "layer": name,
            "type": type(layer).__name__,
            "input": shape_in,
            "output": list(x.shape[1:]),
            "params": sum(p.numel() for p in layer.parameters()),
        }
        for setting in ("kernel_size", "stride", "padding"):
            if hasattr(layer, setting):
                value = getattr(layer, setting)
                row[setting] = value if isinstance(value, int) else value[0]  # square here
        rows.append(row)
        say(
            f"  {name:8}{row['type']:10}{str(shape_in):>12} -> {str(row['output']):12}"
            f"{row['params']:6}"
        )
    total = sum(p.numel() for p in net.parameters())
    return {"cnn_architecture": {"layers": rows, "total_params": total}}


# ==== 3.2 Training the CNN: the tutorial's loop, fed straight from the numpy arrays. ============


def distort(images, maps):
    """augment_affine's distortions in torch, from random_affine's maps: the same maps, shifts
    rescaled to affine_grid's coordinates (the image spans -1 to 1, 14 pixels per unit)."""
    theta = torch.from_numpy(maps).to(images.device)
    theta[:, :, 2] /= 14
    grid = F.affine_grid(theta, [len(images), 1, 28, 28], align_corners=False)
    distorted = F.grid_sample(images.reshape(-1, 1, 28, 28), grid, align_corners=False)
    return distorted.reshape(-1, 784)


def cnn_log_probs(net, x, chunk=500):
    """log softmax of the class scores of every image; small chunks keep each layer in cache."""
    device = next(net.parameters()).device
    net.eval()
    log_probs = []
    with torch.no_grad():
        for start in range(0, len(x), chunk):
            images = torch.from_numpy(x[start : start + chunk]).to(device)
            log_probs.append(F.log_softmax(net(images), 1).cpu())
    net.train()
    return torch.cat(log_probs).numpy()


def train_cnn(
    net,
    data,
    *,
    epochs,
    batch,
    optimizer,
    loss_fn,
    seed,
    tag,
    scheduler=None,
    augment=None,
    train_eval_n=None,
):
    """Train net in place, as train_mlp does the MLP; returns the history and the best epoch's
    weights. The step inside is the tutorial's: zero_grad, forward, loss, backward, step."""
    x, y = data["train"]
    device = next(net.parameters()).device
    x_all = torch.from_numpy(x).to(device)
    y_all = torch.from_numpy(y).to(device)
    rng = np.random.default_rng(seed)
    history = {}
    best = None
    start = time.perf_counter()
    steps = 0
    for epoch in range(1, epochs + 1):
        for idx in batches(len(x), batch, rng):
            steps += 1
            idx = torch.from_numpy(idx).long().to(device)  # int64 also where numpy gives int32
            inputs = x_all[idx]
            labels = y_all[idx]
            if augment is not None:  # 3.4
                inputs = distort(inputs, random_affine(len(idx), rng, **augment))
            # The training step, copied from the PyTorch tutorial "Training a classifier":
            optimizer.zero_grad()
            loss = loss_fn(net(inputs), labels)
            loss.backward()
            optimizer.step()
            if scheduler is not None:  # 3.4
                scheduler.step()
        train = accuracy_and_loss(cnn_log_probs(net, x[:train_eval_n]), y[:train_eval_n])
        val = accuracy_and_loss(cnn_log_probs(net, data["val"][0]), data["val"][1])
        is_best = record_epoch(
            history,
            tag=tag,
            epoch=epoch,
            epochs=epochs,
            steps=steps,
            train=train,
            val=val,
            start=start,
        )
        if is_best:
            state = {name: tensor.clone() for name, tensor in net.state_dict().items()}
            best = {"val_acc": history["val_acc"][-1], "state": state}
    return history, best


def train_cnn_as_specified(data, *, epochs, seed, device, tag):
    """3.2: plain SGD at learning rate 0.001 on the cross-entropy summed over batches of 256, as
    the MLP of 2.4 (the tutorial's momentum and mean loss are a variant in the report)."""
    torch.manual_seed(seed)  # the initial weights
    net = ConvNet().to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=SPEC["lr"])
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")
    history, _ = train_cnn(
        net,
        data,
        epochs=epochs,
        batch=SPEC["batch"],
        optimizer=optimizer,
        loss_fn=loss_fn,
        seed=seed,
        tag=tag,
    )
    return net, history


def section_3_2(data, args):
    """The specified training on all 50000 images."""
    x, y = data["train"]
    epochs = QUICK["epochs"] if args.quick else CNN_STUDY["epochs_full"]
    start = time.perf_counter()
    net, history = train_cnn_as_specified(
        data, epochs=epochs, seed=args.seed, device=args.device, tag=f"3.2, {len(x)} images"
    )
    save_cnn(net, args.out / "weights" / "cnn_spec.npz")
    entry = summary(history, start, args.seed, train_n=len(x), val_accuracy=history["val_acc"][-1])
    entry.update(test_scores(cnn_log_probs(net, data["test"][0]), data["test"]))
    return {"cnn_spec": entry}


# ==== 3.3 Over-fitting? The training of 3.2 on the first 2000 images, as in 2.5. ================


def section_3_3(data, args):
    """The training of 3.2 on the first 2000 images, plotted above 3.2's run on all 50000."""
    x, y = data["train"]
    full = read_results(args.out)["cnn_spec"]  # 3.2's run, checked before the first epoch
    n = study_size(len(x), CNN_STUDY["small_n"], args.quick)
    epochs = QUICK["epochs"] if args.quick else CNN_STUDY["epochs_small"]
    start = time.perf_counter()
    small = {"train": (x[:n], y[:n]), "val": data["val"]}
    _, history = train_cnn_as_specified(
        small, epochs=epochs, seed=args.seed, device=args.device, tag=f"3.3, {n} images"
    )
    runs = [
        (f"first {n} images, {epochs} epochs", history),
        (f"all {full['train_n']} images, {full['epochs']} epochs", full["history"]),
    ]
    title = f"CNN: SGD, learning rate {SPEC['lr']} on the summed loss, batch {SPEC['batch']}"
    plot_curves(runs, title=title, out=args.out, name="cnn_study")
    entry = summary(history, start, args.seed, train_n=n, val_accuracy=history["val_acc"][-1])
    return {"cnn_spec_2000": entry}


# ==== 3.4 How well does it work? The template CNN, trained better. ===============================


class SmoothedCrossEntropy(Module):
    """Cross-entropy with label smoothing s (Szegedy et al., 2016), written out: the target puts
    1 - s + s/10 on the true digit and s/10 on each other, so the loss is
    (1 - s) (-log p_true) + s mean_j(-log p_j). torch 1.10 and newer have it built in."""

    def __init__(self, smoothing):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits, labels):
        log_probs = F.log_softmax(logits, dim=1)
        true_digit = -log_probs.gather(1, labels[:, None])[:, 0]
        every_digit = -log_probs.mean(dim=1)
        return ((1 - self.smoothing) * true_digit + self.smoothing * every_digit).mean()


def smoothed_cross_entropy(smoothing):
    """torch's own label-smoothed loss where it has one (torch 1.10 and newer), else the same loss
    written out."""
    try:
        return torch.nn.CrossEntropyLoss(label_smoothing=smoothing)
    except TypeError:
        return SmoothedCrossEntropy(smoothing)


def steps_per_epoch(n, batch):
    return (n + batch - 1) // batch  # the last batch may be smaller


def train_cnn_best(cfg, data, *, seed, device):
    """The 3.4 recipe: Adam with a one-cycle learning rate (Smith and Topin, 2019), label
    smoothing, the random affine distortions of 2.6, and the best validation epoch's weights."""
    torch.manual_seed(seed)  # the initial weights
    net = ConvNet().to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    total_steps = cfg["epochs"] * steps_per_epoch(len(data["train"][0]), cfg["batch"])
    scheduler = torch.optim.lr_scheduler.OneCycleLR(  # torch's defaults, written out:
        optimizer,
        max_lr=cfg["lr"],
        total_steps=total_steps,
        pct_start=0.3,  # the rate rises from max_lr / 25 over the first 30 % of the steps,
        div_factor=25.0,
        final_div_factor=1e4,  # then falls along a cosine to max_lr / 25 / 10^4
        cycle_momentum=True,  # while Adam's beta1 falls from 0.95 to 0.85 and rises again
        base_momentum=0.85,
        max_momentum=0.95,
    )
    history, best = train_cnn(
        net,
        data,
        epochs=cfg["epochs"],
        batch=cfg["batch"],
        optimizer=optimizer,
        loss_fn=smoothed_cross_entropy(cfg["label_smoothing"]),
        seed=seed,
        tag="3.4",
        scheduler=scheduler,
        augment=cfg["augment"],
        train_eval_n=TRAIN_EVAL_N,
    )
    net.load_state_dict(best["state"])  # the weights of the best epoch on validation
    return net, history, best


def section_3_4(data, args):
    """The 3.4 recipe on all 50000 images; then its test accuracy and confusion matrix."""
    cfg = dict(CNN_BEST, epochs=QUICK["epochs"]) if args.quick else CNN_BEST
    start = time.perf_counter()
    net, history, best = train_cnn_best(cfg, data, seed=args.seed, device=args.device)
    save_cnn(net, args.out / "weights" / "cnn.npz")
    title = "CNN of 3.4: Adam, one-cycle learning rate, label smoothing, random affine distortions"
    runs = [(f"{cfg['epochs']} epochs", history)]
    train_label = f"first {TRAIN_EVAL_N} training images"
    plot_curves(
        runs,
        title=title,
        out=args.out,
        name="cnn_best_training",
        accuracy_from=95,
        train_label=train_label,
    )
    test_log_probs = cnn_log_probs(net, data["test"][0])
    entry = summary(
        history, start, args.seed, val_accuracy=best["val_acc"], config=cfg, device=args.device
    )
    entry.update(test_scores(test_log_probs, data["test"]))
    predicted = test_log_probs.argmax(axis=1)
    confusion = confusion_section(
        "cnn", predicted=predicted, test=data["test"], out=args.out, title="CNN of 3.4"
    )
    return {"cnn_best": entry, **confusion}


# ==== Files and faults: checked inputs, whole files, one-sentence errors. =========================
# Everything a run reads is checked before its first epoch; every file it writes appears whole or
# not at all; a problem is one sentence on stderr and exit status 2.

STALE_LOCK_SECONDS = 10  # an update holds the lock for milliseconds: older, its run was killed
STALE_TMP_SECONDS = 600  # a temporary lives for one write, seconds at most


def unique_name(path, suffix):
    """A hidden name beside path that no other run picks: .{name}.{time}.{random}{suffix}."""
    token = f"{time.time_ns()}.{np.random.default_rng().integers(1 << 40)}"
    return path.with_name(f".{path.name}.{token}{suffix}")


def age_seconds(path):
    """Seconds since path was last modified (0 if it is gone)."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def check_regular_file(path):
    """Refuse a missing path, a folder, a FIFO or a device where a file belongs."""
    if not path.exists():
        raise UserError(f"{path}: file not found.")
    if not path.is_file():
        raise UserError(f"{path}: not a regular file (a folder, FIFO or device); expected a file.")


def read_npy_header(file, path):
    """(shape, dtype, where the data start) of the .npy array in an open file, from its header
    alone: what the file claims to hold can be checked before anything is allocated for it."""
    try:
        version = np.lib.format.read_magic(file)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(file)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(file)
    except Exception as error:  # not .npy, an unknown version, a damaged header
        raise UserError(
            f"{path}: not a readable .npy array ({type(error).__name__}: {error})."
        ) from None
    if dtype.hasobject:
        raise UserError(
            f"{path}: holds Python objects, which are never unpickled; expected numbers."
        )
    return shape, dtype, file.tell()


def read_npy(path, kinds, what):
    """One array saved with np.save, read without pickle: its dtype kind must be one of kinds
    (u, i, f), and the file must hold all the bytes its header claims."""
    check_regular_file(path)
    try:
        with open(path, "rb") as file:
            if file.read(2) == b"PK":
                raise UserError(
                    f"{path}: an .npz archive renamed .npy; expected one np.save array."
                )
            file.seek(0)
            shape, dtype, data_start = read_npy_header(file, path)
            file_size = file.seek(0, 2)
        if dtype.kind not in kinds:
            expected = "integer" if kinds == "ui" else "integer or floating-point"
            raise UserError(f"{path}: expected {expected} {what}, found dtype {dtype}.")
        claimed = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if claimed > file_size - data_start:
            raise UserError(
                f"{path}: not a readable .npy array: its header claims {claimed} bytes (shape "
                f"{shape}), the file holds {file_size - data_start}; it is damaged or cut short."
            )
        return np.load(path, allow_pickle=False)
    except OSError as error:
        raise UserError(f"{path}: cannot be read ({error.strerror or error}).") from None
    except ValueError as error:
        raise UserError(f"{path}: not a readable .npy array ({error}).") from None


def write_arrays(path, arrays):
    """An .npz of plain arrays (np.savez), written whole."""
    write_whole(path, savez_to, arrays)


def savez_to(path, arrays):
    with open(path, "wb") as file:  # a file, not a name: np.savez would add .npz to a name
        np.savez(file, **arrays)


def read_arrays(path, shapes, *, what, part):
    """{name: float32 array} from an .npz written by write_arrays, read without pickle. Each array
    in shapes must be there with that shape and floating-point values, checked from its header
    before it is read; NaN or infinite values are refused too."""
    remake = f"run `python Project3.py --part {part}` (with the same --out) to make them"
    check_regular_file(path)
    if not is_complete_zip(path):
        raise UserError(
            f"{path}: not a readable .npz of {what} weights (damaged or cut short); {remake}."
        )
    found = {}
    try:
        with np.load(path, allow_pickle=False) as saved:
            for name, shape in shapes.items():
                if name not in saved.files:
                    raise UserError(f"{path}: no array {name} among the {what} weights; {remake}.")
                with saved.zip.open(f"{name}.npy") as member:
                    found_shape, dtype, _ = read_npy_header(member, f"{path}[{name}]")
                if found_shape != tuple(shape) or dtype.kind != "f":
                    raise UserError(
                        f"{path}: expected {name} of shape {tuple(shape)} with floating-point "
                        f"values, found shape {found_shape} of dtype {dtype}; {remake}."
                    )
                found[name] = saved[name].astype(np.float32)
    except UserError:
        raise
    except Exception as error:  # a damaged archive: zipfile's, numpy's or the system's error
        raise UserError(
            f"{path}: no readable {what} weights ({type(error).__name__}: {error}); {remake}."
        ) from None
    for name, theta in found.items():
        if not np.isfinite(theta).all():
            bad = np.count_nonzero(~np.isfinite(theta))
            raise UserError(f"{path}: {name} holds {bad} NaN or infinite values; {remake}.")
    return found


def is_complete_zip(path):
    """True if path ends with a zip archive's end record, as an .npz does unless cut short."""
    with open(path, "rb") as file:
        size = file.seek(0, 2)
        file.seek(max(0, size - 22 - 65535))  # the 22-byte record, then a comment of up to 64 KiB
        return b"PK\x05\x06" in file.read()


def save_cnn(net, path):
    """The CNN's state dict as plain arrays: no pickle is written, so none is ever read."""
    arrays = {name: tensor.cpu().numpy() for name, tensor in net.state_dict().items()}
    write_arrays(path, arrays)


def load_cnn(path, device):
    """Weights written by save_cnn; missing, damaged, mis-shaped or non-finite ones are refused."""
    old_format = path.with_suffix(".pt")
    if not path.exists() and old_format.exists():
        raise UserError(
            f"{old_format} holds the CNN in the pickle format of earlier versions, which is never "
            "read; remake it with `python Project3.py --part cnn`, or convert it with "
            "`python tools/convert_weights.py`."
        )
    net = ConvNet()
    shapes = {name: tuple(tensor.shape) for name, tensor in net.state_dict().items()}
    arrays = read_arrays(path, shapes, what="template CNN", part="cnn")
    net.load_state_dict({name: torch.from_numpy(array) for name, array in arrays.items()})
    return net.to(device)


def write_whole(path, write, *args, **kwargs):
    """write(tmp, *args, **kwargs) into a temporary beside path, then rename it onto path: a
    reader sees the old file or the new one, never half of one. After any failure (Ctrl-C, a full
    disk) the old file is left as it was and the temporary is gone."""
    tmp = unique_name(path, ".tmp")
    try:
        write(tmp, *args, **kwargs)
        tmp.replace(path)
    except OSError as error:
        raise UserError(
            f"could not write {path} ({error.strerror or error}); the file there, if any, was left "
            "as it was."
        ) from None
    finally:
        try:
            tmp.unlink()
        except OSError:  # renamed into place, or never made
            pass


def save_figure(fig, out, name):
    """The figure as PDF (for the report) and PNG (to look at), each written whole."""
    for ext in ("pdf", "png"):
        path = out / "figures" / f"{name}.{ext}"
        write_whole(path, fig.savefig, format=ext, dpi=200, bbox_inches="tight")
    plt.close(fig)


def refuse_constant(name):
    raise ValueError(f"{name} is not standard JSON")


def read_results(out):
    """results.json as a dict of dicts ({} if there is none); anything else is refused."""
    path = out / "figures" / "results.json"
    if not path.exists():
        return {}
    if not path.is_file():
        raise UserError(f"{path} is not a file; move it away so that the results can be written.")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path} cannot be read ({error}).") from None
    try:
        results = json.loads(text, parse_constant=refuse_constant)
    except ValueError as error:
        raise UserError(
            f"{path} is not valid JSON ({error}); restore it, or delete it to start afresh."
        ) from None
    if not isinstance(results, dict):
        found = type(results).__name__
        raise UserError(
            f"{path} is not valid JSON for results (expected an object, found {found}); "
            "restore it, or delete it to start afresh."
        )
    for key, value in results.items():
        if not isinstance(value, dict):
            found = type(value).__name__
            raise UserError(
                f"{path} is not valid JSON for results (entry {key!r} should be an object, found "
                f"{found}); restore it, or delete it to start afresh."
            )
    return results


def record_results(out, entries, merged=()):
    """Write entries into results.json: each replaces the entry of its name, except those named in
    merged, which are merged into the old entry. The update holds a lock, so that runs finishing
    together all land; a lock left by a killed run is taken over."""
    path = out / "figures" / "results.json"
    lock = out / "figures" / ".results.json.lock"
    take_lock(lock)
    try:
        results = read_results(out)
        for key, value in entries.items():
            if key in merged:
                value = {**results.get(key, {}), **value}
            results[key] = value
        text = json.dumps(results, indent=1, sort_keys=True, allow_nan=False) + "\n"
        write_whole(path, Path.write_text, text)
    finally:
        remove_if_present(lock)


def take_lock(lock):
    """Create lock, which only one run can do at a time; wait while another run holds it."""
    deadline = time.monotonic() + 60
    while True:
        try:
            lock.touch(exist_ok=False)
            return
        except FileExistsError:
            pass
        except OSError as error:
            raise UserError(f"cannot create {lock} ({error.strerror or error}).") from None
        if age_seconds(lock) > STALE_LOCK_SECONDS:
            remove_stale_lock(lock)
        elif time.monotonic() > deadline:
            raise UserError(
                f"{lock} has been held by another run for a minute; is one still going?"
            )
        time.sleep(0.05)


def remove_stale_lock(lock):
    """Remove a lock that a killed run left behind. A guard file, held for microseconds, makes the
    removal safe when several runs find the same stale lock: each checks its age again inside."""
    guard = lock.with_name(lock.name + ".takeover")
    try:
        guard.touch(exist_ok=False)
    except FileExistsError:
        if age_seconds(guard) > STALE_LOCK_SECONDS:  # its holder was killed in those microseconds
            remove_if_present(guard)
        return
    try:
        if age_seconds(lock) > STALE_LOCK_SECONDS:
            remove_if_present(lock)
            print(f"note: removed {lock}, left by a run that was stopped.", file=sys.stderr)
    finally:
        remove_if_present(guard)


def remove_if_present(path):
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def remove_stale_temporaries(out):
    """Temporaries that a killed run left: a temporary lives for the seconds of one write."""
    for folder in (out / "figures", out / "weights"):
        for tmp in folder.glob(".*.tmp"):
            if age_seconds(tmp) > STALE_TMP_SECONDS:
                remove_if_present(tmp)


def check_writable(out, subfolders=("figures", "weights")):
    """The subfolders of out exist (made if need be) and take a new file."""
    try:
        for sub in subfolders:
            folder = out / sub
            folder.mkdir(parents=True, exist_ok=True)
            probe = unique_name(folder / "write-test", "")
            probe.touch(exist_ok=False)
            probe.unlink()
    except OSError as error:
        raise UserError(
            f"--out {out}: not a folder this run can write ({error.strerror or error})."
        ) from None


# ==== The command line: the grader's run, a part, a section, or the saved networks. ============

SECTIONS = {
    "2.5": section_2_5,
    "2.6": section_2_6,
    "2.7": section_2_7,
    "2.8": section_2_8,
    "3.1": section_3_1,
    "3.2": section_3_2,
    "3.3": section_3_3,
    "3.4": section_3_4,
}
DESCRIPTION = "Project 3: MNIST digits with an MLP in numpy (Part 1) and a CNN in PyTorch (Part 2)."


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument(
        "--part",
        choices=["all", "mlp", "cnn", "eval"],
        default="all",
        help="all (default): Part 1, then Part 2; eval: the saved networks on the test split",
    )
    parser.add_argument("--section", choices=list(SECTIONS), help="one section of the report")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--data", help="data folder (default: Project3_data beside this file)")
    parser.add_argument("--out", help="where figures/ and weights/ go (default: beside this file)")
    parser.add_argument("--quick", action="store_true", help="a few hundred images, 2 epochs")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="Part 2's (default: CUDA if any)")
    args = parser.parse_args(argv)
    if args.section and args.part not in ("all", {"2": "mlp", "3": "cnn"}[args.section[0]]):
        parser.error(f"--section {args.section} is not part of --part {args.part}")
    if args.out == "" or args.data == "":
        parser.error("--out and --data need a folder; an empty one was given")
    default_out = HERE / "quick" if args.quick else HERE
    args.out = Path(args.out).resolve() if args.out else default_out
    return args


def sections_to_run(args):
    if args.section:
        return [args.section]
    parts = {"all": "23", "mlp": "2", "cnn": "3"}[args.part]
    if torch is None:
        parts = "2"  # the default run does Part 1 and says why it stops there
    return [section for section in SECTIONS if section[0] in parts]


def pick_device(requested, runs_part_2):
    """Part 2's device: --device if CUDA is there when asked for, else CUDA where there is one.
    CUDA is looked for only where Part 2 runs: torch 1.7 warns when it finds no driver."""
    has_cuda = (
        torch is not None and (runs_part_2 or requested == "cuda") and torch.cuda.is_available()
    )
    if requested == "cuda" and not has_cuda:
        raise UserError("--device cuda was asked for, but torch finds no CUDA device here.")
    return requested or ("cuda" if has_cuda else "cpu")


def check_before_training(args, sections):
    """Everything a run needs, checked before its first epoch: options, torch, the data, --out and
    what the sections read from earlier runs. Returns the data."""
    if not 0 <= args.seed < 2**32:
        raise UserError(f"--seed must lie in 0 to {2**32 - 1}, found {args.seed}.")
    wants_torch = args.part == "cnn" or (args.section or "2")[0] == "3"
    if torch is None and wants_torch:
        asked = f"--section {args.section}" if args.section else "--part cnn"
        raise UserError(
            f"{asked} needs PyTorch, which cannot be imported here ({TORCH_PROBLEM}); Part 1 "
            "(--part mlp) does not."
        )
    runs_part_2 = any(section[0] == "3" for section in sections)
    args.device = pick_device(args.device, runs_part_2)
    data = load_data(find_data_dir(args.data))
    if len(data["train"][0]) < 3:
        n = len(data["train"][0])
        raise UserError(f"the training split holds {n} images; 2.5 and 3.3 need at least 3.")
    check_writable(args.out)
    remove_stale_temporaries(args.out)
    check_earlier_outputs(args, sections)
    if args.quick:
        for split in ("train", "val"):
            images, labels = data[split]
            n = QUICK[f"{split}_n"]
            data[split] = (images[:n], labels[:n])
    return data


def check_earlier_outputs(args, sections):
    """A section run without the one before it builds on an earlier run's outputs: are they
    there?"""
    weights = args.out / "weights"
    results = read_results(args.out)  # a damaged results.json is refused now, not after training
    if "2.7" in sections and "2.6" not in sections:
        MLP.load(weights / "mlp.npz")
    if "2.8" in sections and "2.5" not in sections:
        MLP.load(weights / "mlp_spec.npz")
        check_same_seed(args, results, "mlp_spec", "2.8 measures the change from 2.5's start")
    if "2.8" in sections and "2.6" not in sections:
        MLP.load(weights / "mlp.npz")
    if "3.3" in sections and "3.2" not in sections:
        spec = results.get("cnn_spec", {})
        if not isinstance(spec.get("history"), dict) or "train_n" not in spec:
            raise UserError(
                f"section 3.3 plots the run of 3.2 beside its own, and {args.out / 'figures'} has "
                "none: run `python Project3.py --section 3.2` first (with the same --out)."
            )
        check_same_seed(args, results, "cnn_spec", "3.3 plots its run beside 3.2's")


def check_same_seed(args, results, key, why):
    """A section that builds on an earlier run's outputs needs that run's seed."""
    seed = results.get(key, {}).get("seed", args.seed)
    if seed != args.seed:
        raise UserError(
            f"section {why}, which ran with --seed {seed}, not {args.seed}: pass --seed {seed}."
        )


def run(args):
    """The sections asked for, in the report's order; each one's results are written as soon as
    it is done, so that a failure later keeps them."""
    start = time.perf_counter()
    sections = sections_to_run(args)
    data = check_before_training(args, sections)
    measured = {}
    for done, section in enumerate(sections):
        say(f"== {section} ==")
        section_start = time.perf_counter()
        try:
            entries = SECTIONS[section](data, args)
            seconds = {section: round(time.perf_counter() - section_start, 1)}
            timing = {"seconds": seconds, "versions": versions()}  # seconds depend on versions
            record_results(args.out, {**entries, **timing}, merged=["seconds"])
        except UserError as error:
            if done == 0:
                raise
            finished = ", ".join(sections[:done])
            kept = f"sections {finished} finished and their files are kept in {args.out}"
            raise UserError(f"{error.args[0].rstrip('.')}; {kept}.") from None
        measured.update(entries)
    print_summary(args, measured, sections, time.perf_counter() - start)


def versions():
    """What the run ran on: its seconds, and the last digits of its numbers, depend on these."""
    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "torch": None if torch is None else torch.__version__,
    }


def print_summary(args, measured, sections, seconds):
    part_2 = f", Part 2 on {args.device}" if any(s[0] == "3" for s in sections) else ""
    say(f"\nDone in {seconds:.0f} s (seed {args.seed}{part_2}).")
    for key, name, base in NETWORKS:
        if key in measured:
            accuracy = 100 * measured[key]["test_accuracy"]
            line = f"  {name:25} test accuracy {accuracy:.2f} % on {measured[key]['test_n']} images"
            if base is not None:
                line += f", extra credit {max(accuracy - base, CREDIT_FLOOR):+.2f}"
            say(line)
    if torch is None:
        say(f"  Part 2 (sections 3.1-3.4) was skipped: it needs PyTorch ({TORCH_PROBLEM}).")
    figures = args.out / "figures"
    say(
        f"  Figures in {figures}, weights in {args.out / 'weights'}, numbers in "
        f"{figures / 'results.json'}."
    )


def run_eval(args):
    """The saved networks of 2.6 and 3.4 (weights/mlp.npz, weights/cnn.npz) on the test split of
    --data (or the default folder); writes nothing and prints JSON last."""
    x, y = load_data(find_data_dir(args.data), ("test",))["test"]
    weights = args.out / "weights"
    mlp = MLP.load(weights / "mlp.npz")
    report = {
        "mlp": {"accuracy": round(accuracy_and_loss(mlp_log_probs(mlp, x), y)[0], 4), "n": len(y)}
    }
    has_cnn = (weights / "cnn.npz").exists() or (weights / "cnn.pt").exists()
    if has_cnn and torch is None:
        print(
            f"note: the CNN in {weights} was not evaluated: no PyTorch ({TORCH_PROBLEM}).",
            file=sys.stderr,
        )
    elif has_cnn:
        cnn = load_cnn(weights / "cnn.npz", pick_device(args.device, runs_part_2=True))
        report["cnn"] = {
            "accuracy": round(accuracy_and_loss(cnn_log_probs(cnn, x), y)[0], 4),
            "n": len(y),
        }
    say(json.dumps(report))


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.part == "eval":
            run_eval(args)
        else:
            run(args)
    except UserError as error:
        print(f"Project3.py: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # an I/O failure no check foresaw: still one sentence
        where = f"{error.filename}: " if error.filename else ""
        print(f"Project3.py: error: {where}{error.strerror or error}.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "Project3.py: interrupted; the files finished so far are kept, no half-written one.",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
