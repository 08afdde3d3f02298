"""Project 3: classifying MNIST digits with a numpy MLP (Part 1) and a PyTorch CNN (Part 2).

Read top to bottom, the sections follow the report:

    0   configuration, data loading, results file, plotting helpers
    2.1-2.3  the MLP (forward pass, initialisation, back-propagation)
    2.4-2.5  SGD training and the 2000-vs-50000 over-fitting study
    2.6      a better-trained MLP (augmentation, Adam, schedule) saved to weights/mlp.npz
    2.7      confusion matrix        2.8  the rows of W1 as templates
    3.1-3.4  the template CNN, its training, its over-fitting study, a better-trained CNN
    ablation / bench / eval / report / zip / command line     around the above

Usage:  python Project3.py --part mlp | cnn | report | all | eval | zip | bench | ablation
        python Project3.py --part mlp --section 2.6        (one section)
        python Project3.py --part mlp --quick              (smoke test of every code path)
        python Project3.py --help                          (every option)

Part 1 uses numpy, matplotlib and time only; torch is imported inside the Part 2 and benchmark
functions, so `--part mlp` runs on a machine without torch.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import matplotlib

matplotlib.use("Agg")  # figures go to files; nothing waits on a window
import matplotlib.pyplot as plt  # noqa: E402

# ============================================================================================
# 0. Configuration: every number a run depends on lives here.
# ============================================================================================

HERE = Path(__file__).resolve().parent
DATA_DIR_NAMES = ("Project3_data", "Project3_Data")
N_PIXELS, N_CLASSES = 784, 10

SPEC = dict(batch=256, lr=0.001)  # sections 2.4 and 3.2, as the assignment gives them

MLP_STUDY = dict(small_n=2000, epochs_small=300, epochs_full=60)   # section 2.5
MLP_BEST = dict(  # section 2.6, chosen on validation accuracy (the ablation below)
    epochs=100, batch=128, lr=3e-3, lr_final=2e-5, weight_decay=1e-4, label_smoothing=0.0,
    augment=dict(rotate_deg=8.0, scale=0.08, shear=0.10, shift=1.5),
)
MLP_ABLATION = (  # --part ablation: each row changes MLP_BEST as given
    ("Adam, cosine schedule, no augmentation", dict(augment=None)),
    ("+ random shifts of up to 1 pixel", dict(augment=dict(rotate_deg=0.0, scale=0.0, shear=0.0, shift=1.0))),
    ("+ light affine distortions (chosen)", dict()),
    ("+ strong affine distortions", dict(augment=dict(rotate_deg=12.0, scale=0.10, shear=0.15, shift=2.5))),
    ("light affine distortions, 60 epochs", dict(epochs=60)),
    ("light affine distortions + label smoothing 0.1", dict(label_smoothing=0.1)),
)
CNN_STUDY = dict(small_n=2000, epochs_small=60, epochs_full=15, optimiser="adam")   # sections 3.2-3.3
CNN_BEST = dict(  # section 3.4, chosen on validation accuracy (the ablation below)
    epochs=35, batch=128, lr=3e-3, weight_decay=1e-4, label_smoothing=0.05,
    augment=dict(rotate_deg=12.0, scale=0.10, shear=0.15, shift=2.5),
)
CNN_OPTIMISERS = ("sgd_momentum", "adam")  # --part ablation: the two readings of "lr 0.001" for 3.2
CNN_ABLATION = (
    ("AdamW, one-cycle schedule, no augmentation", dict(augment=None, label_smoothing=0.0)),
    ("+ label smoothing 0.05", dict(augment=None)),
    ("+ affine distortions (chosen)", dict()),
)
QUICK = dict(train_n=600, val_n=300, epochs=2)  # --quick: every code path, a few seconds


class UserError(Exception):
    """Something the user can fix (bad data, a missing tool, a bad option): reported as one
    sentence on stderr with exit status 2, never as a traceback."""


class DataError(UserError):
    """Bad or missing data or weights."""


# ============================================================================================
# 0. Data: one loader for both parts.
# ============================================================================================

def find_data_dir(override=None):
    """The data folder: --data if given, else Project3_data (or Project3_Data) beside this file."""
    if override is not None:
        folder = Path(override)
        if not folder.is_dir():
            raise DataError(f"data folder {folder} does not exist (given with --data).")
        return folder
    for name in DATA_DIR_NAMES:
        if (HERE / name).is_dir():
            return HERE / name
    raise DataError(f"no data folder found: expected {' or '.join(DATA_DIR_NAMES)} beside {HERE / 'Project3.py'}"
                    " (or pass --data DIR).")


def load_split(folder, split):
    """Images as float32 in [0, 1], shape (N, 784), and labels as int64, of one split.

    Accepts uint8 images in 0-255, float images in [0, 1] or [0, 255], shaped (N, 784) or
    (N, 28, 28), and labels of any integer dtype. Anything else is a DataError naming the file.
    """
    folder = Path(folder)
    img_path = folder / f"MNIST_{split}_images.npy"
    lab_path = folder / f"MNIST_{split}_labels.npy"
    images, labels = _load_npy(img_path), _load_npy(lab_path)

    if images.ndim == 3 and images.shape[1:] == (28, 28):
        images = images.reshape(len(images), N_PIXELS)
    if images.ndim != 2 or images.shape[1] != N_PIXELS:
        raise DataError(f"{img_path}: expected images of shape (N, 784) or (N, 28, 28), found {images.shape}.")
    if len(images) == 0:
        raise DataError(f"{img_path}: the {split} split is empty (0 images).")
    if labels.ndim != 1:
        raise DataError(f"{lab_path}: expected a 1-D array of labels, found shape {labels.shape}.")
    if len(labels) != len(images):
        raise DataError(f"{lab_path}: {len(labels)} labels for {len(images)} images in {img_path.name}.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{lab_path}: expected integer labels, found dtype {labels.dtype}.")
    if labels.min() < 0 or labels.max() >= N_CLASSES:
        raise DataError(f"{lab_path}: labels must lie in 0-9, found values from {labels.min()} to {labels.max()}.")

    if images.dtype == np.uint8:
        x = images.astype(np.float32) / 255
    elif np.issubdtype(images.dtype, np.floating) or np.issubdtype(images.dtype, np.integer):
        x = images.astype(np.float32)
        if not np.isfinite(x).all():
            raise DataError(f"{img_path}: {np.count_nonzero(~np.isfinite(x))} pixels are NaN or infinite.")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{img_path}: pixels must lie in [0, 1] or [0, 255], found values from {lo} to {hi}.")
        if hi > 1:
            x /= 255
    else:
        raise DataError(f"{img_path}: expected numeric images, found dtype {images.dtype}.")
    return x, labels.astype(np.int64)


def _load_npy(path):
    if not path.is_file():
        raise DataError(f"{path}: file not found.")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:  # a truncated or non-.npy file: say which, not a traceback
        raise DataError(f"{path}: not a readable .npy array ({err}).") from None


def load_data(data_dir=None, splits=("train", "val")):
    """{split: (x, y)} for the asked splits. The test split is asked for only at the very end."""
    folder = find_data_dir(data_dir)
    return {s: load_split(folder, s) for s in splits}


def load_training_data(args):
    """The training and validation splits, cut to a few hundred images with --quick."""
    data = load_data(args.data)
    if args.quick:
        data = {s: (x[:QUICK[f"{s}_n"]], y[:QUICK[f"{s}_n"]]) for s, (x, y) in data.items()}
    return data


def one_hot(y):
    return np.eye(N_CLASSES, dtype=np.float32)[y]


# ============================================================================================
# 0. Outputs: results.json, atomic writes, figures.
# ============================================================================================

def atomic_write(path, write):
    """Call write(tmp_path), then move tmp_path onto path: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def read_results(out):
    path = Path(out) / "figures" / "results.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def update_results(out, **entries):
    """Merge entries into out/figures/results.json (each section owns its keys)."""
    results = read_results(out)
    results.update(entries)
    atomic_write(Path(out) / "figures" / "results.json",
                 lambda p: p.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n"))
    return results


def save_figure(fig, out, name):
    """Save as PDF (for LaTeX) and PNG (to look at)."""
    for ext in ("pdf", "png"):
        atomic_write(Path(out) / "figures" / f"{name}.{ext}", lambda p: fig.savefig(p, dpi=150, bbox_inches="tight"))
    plt.close(fig)


def plot_history(history, title, out, name):
    """Accuracy on the training subset and the validation set after every epoch (Figure 2 style)."""
    epochs = np.arange(1, len(history["train_acc"]) + 1)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(epochs, 100 * np.array(history["train_acc"]), label="training set")
    ax.plot(epochs, 100 * np.array(history["val_acc"]), label="validation set")
    ax.set_xlabel(f"epoch ({history['steps_per_epoch']} steps of batch {history['batch']} each)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    lo = min(min(history["train_acc"]), min(history["val_acc"]))
    ax.set_ylim(max(0, 100 * lo - 2), 100.5)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    save_figure(fig, out, name)


def confusion_matrix(y_true, y_pred):
    """C[i, j] = number of images of digit i predicted as j."""
    C = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    np.add.at(C, (y_true, y_pred), 1)
    return C


def confusion_summary(C, top=6):
    """Per-class accuracy and the most frequent (true, predicted) mistakes."""
    per_class = np.diag(C) / np.maximum(C.sum(axis=1), 1)  # a digit absent from the split scores 0
    off = C.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:top]
    confusions = [dict(true=int(i), predicted=int(j), count=int(off[i, j]))
                  for i, j in zip(*np.unravel_index(order, off.shape)) if off[i, j] > 0]
    return dict(matrix=C.tolist(), per_class_accuracy=[round(float(a), 4) for a in per_class],
                top_confusions=confusions)


def plot_confusion(C, title, out, name):
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    shown = np.log1p(C)  # log scale so the off-diagonal mistakes are visible beside the diagonal
    ax.imshow(shown, cmap="Blues")
    for i in range(N_CLASSES):
        for j in range(N_CLASSES):
            ax.text(j, i, str(C[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if shown[i, j] > 0.6 * shown.max() else "black")
    ax.set_xticks(range(N_CLASSES))
    ax.set_yticks(range(N_CLASSES))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title)
    save_figure(fig, out, name)


def progress(tag, epoch, epochs, train_acc, val_acc, start):
    elapsed = time.perf_counter() - start
    eta = elapsed / epoch * (epochs - epoch)
    print(f"[{tag}] epoch {epoch:3d}/{epochs}  train {100 * train_acc:6.2f}%  val {100 * val_acc:6.2f}%  "
          f"elapsed {elapsed:6.1f}s  ETA {eta:6.1f}s", flush=True)


# ============================================================================================
# 2.1-2.3 The MLP: 784 -> 64 sigmoid -> 10 softmax, back-propagation by hand.
# ============================================================================================

def sigmoid(a):
    # 1 / (1 + e^-a) written with tanh: identical maths, but never overflows for large |a|.
    return 0.5 * (1 + np.tanh(0.5 * a))


def softmax(a):
    e = np.exp(a - a.max(axis=-1, keepdims=True))  # shifting by the max keeps exp() <= 1
    return e / e.sum(axis=-1, keepdims=True)


class MLP:
    """y_hat = softmax(W2 sigmoid(W1 x + b1) + b2), for one image (784,) or a batch (B, 784).

    A batch is stored row-wise, so in code a1 = x @ W1.T + b1 is the equation a1 = W1 x + b1
    applied to every row x of the batch.
    """

    def __init__(self, n_in=N_PIXELS, n_hidden=64, n_out=N_CLASSES, seed=None):
        # 2.2: weights ~ N(0, 0.1^2), biases 0.
        rng = np.random.default_rng(seed)
        self.W1 = (0.1 * rng.standard_normal((n_hidden, n_in))).astype(np.float32)
        self.b1 = np.zeros(n_hidden, dtype=np.float32)
        self.W2 = (0.1 * rng.standard_normal((n_out, n_hidden))).astype(np.float32)
        self.b2 = np.zeros(n_out, dtype=np.float32)
        self.reset_grad()

    def params(self):
        return dict(W1=self.W1, b1=self.b1, W2=self.W2, b2=self.b2)

    # 2.1 --------------------------------------------------------------------------------------
    def forward(self, x):
        x = np.asarray(x, dtype=self.W1.dtype)  # float32 in use; float64 for gradient checks
        self.single = x.ndim == 1
        self.x = x.reshape(1, -1) if self.single else x
        self.a1 = self.x @ self.W1.T
        self.a1 += self.b1                           # a1 = W1 x + b1
        self.f1 = sigmoid(self.a1)                   # f1 = sigma(a1)
        self.a2 = self.f1 @ self.W2.T + self.b2      # a2 = W2 f1 + b2
        self.y_hat = softmax(self.a2)                # y_hat = softmax(a2)
        return self.y_hat[0] if self.single else self.y_hat

    def loss(self, y):
        """Summed cross-entropy -sum y log y_hat of the last forward pass, from a2 (log-softmax),
        so it stays finite where y_hat underflows to 0."""
        y = np.asarray(y, dtype=self.a2.dtype).reshape(self.a2.shape)
        shifted = self.a2 - self.a2.max(axis=1, keepdims=True)
        log_y_hat = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-(y * log_y_hat).sum())

    # 2.3.2 ------------------------------------------------------------------------------------
    def reset_grad(self):
        for name, theta in self.params().items():
            grad = getattr(self, f"{name}_grad", None)
            if grad is None or grad.shape != theta.shape or grad.dtype != theta.dtype:
                setattr(self, f"{name}_grad", np.zeros_like(theta))
            else:
                grad.fill(0)  # in place: no new allocation on every step

    def update_grad(self, y):
        """Add dL/dtheta of the cross-entropy of the last forward pass, summed over its images.

        Each line is one row-vector chain rule of section 2.3.1, stacked over the batch (B rows):
          dL/da2 = y_hat - y
          dL/db2 = dL/da2 . da2/db2   (= I)                  -> sum over rows
          dL/dW2 = dL/da2 . da2/dW2   (= f1 in each row)     -> outer products (dL/da2)^T f1
          dL/df1 = dL/da2 . da2/df1   (= W2)
          dL/da1 = dL/df1 . df1/da1   (= diag(f1 (1 - f1)))
          dL/db1 = dL/da1 . da1/db1   (= I),   dL/dW1 = (dL/da1)^T x
        """
        y = np.asarray(y, dtype=self.y_hat.dtype).reshape(self.y_hat.shape)
        dL_da2 = self.y_hat - y
        self.b2_grad += dL_da2.sum(axis=0)
        self.W2_grad += dL_da2.T @ self.f1
        dL_df1 = dL_da2 @ self.W2
        dL_da1 = dL_df1 * self.f1 * (1 - self.f1)
        self.b1_grad += dL_da1.sum(axis=0)
        self.W1_grad += dL_da1.T @ self.x

    def update_params(self, lr):
        """One plain gradient step: theta <- theta - lr * dL/dtheta."""
        self.W1 -= lr * self.W1_grad
        self.b1 -= lr * self.b1_grad
        self.W2 -= lr * self.W2_grad
        self.b2 -= lr * self.b2_grad

    def predict(self, x, chunk=10000):
        return np.concatenate([self.forward(x[i:i + chunk]).argmax(axis=1) for i in range(0, len(x), chunk)])

    def save(self, path):
        atomic_write(path, lambda p: np.savez(p, **self.params()))

    @classmethod
    def load(cls, path):
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no saved MLP weights (run `python Project3.py --part mlp` first).")
        net = cls()
        with np.load(path) as saved:
            for name, value in net.params().items():
                if name not in saved or saved[name].shape != value.shape:
                    raise DataError(f"{path}: expected {name} of shape {value.shape}, found "
                                    f"{saved[name].shape if name in saved else 'nothing'}.")
                setattr(net, name, saved[name].astype(np.float32))
        return net


class AdamMLP(MLP):
    """The same network; update_params takes an Adam step (with decoupled weight decay on the
    weights) from the same summed gradients instead of a plain one. Used in section 2.6 only."""

    def __init__(self, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8, **kw):
        super().__init__(**kw)
        self.weight_decay, self.betas, self.eps, self.t = weight_decay, betas, eps, 0
        self.m = {k: np.zeros_like(v) for k, v in self.params().items()}
        self.v = {k: np.zeros_like(v) for k, v in self.params().items()}

    def update_params(self, lr):
        self.t += 1
        b1, b2 = self.betas
        bias1, bias2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for name, theta in self.params().items():
            g = getattr(self, f"{name}_grad")
            m, v = self.m[name], self.v[name]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            if name.startswith("W"):
                theta *= 1 - lr * self.weight_decay
            theta -= lr * (m / bias1) / (np.sqrt(v / bias2) + self.eps)


# ============================================================================================
# 2.4 Training: SGD on mini-batches, reshuffled every epoch.
# ============================================================================================

def accuracy(net, x, y):
    return float((net.predict(x) == y).mean())


def run_epochs(n, epochs, batch, seed, step, evaluate, snapshot, tag):
    """The epoch loop both parts share: reshuffle the n training images every epoch, call
    step(indices of a batch, fraction of training done) for each batch, then record
    evaluate() -> (training accuracy, validation accuracy) and keep snapshot() of the best epoch
    on validation. Returns the history and the best epoch."""
    rng = np.random.default_rng(seed)
    steps = -(-n // batch)
    history = dict(train_acc=[], val_acc=[], batch=batch, steps_per_epoch=steps)
    best = dict(val_acc=-1.0)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        for s in range(steps):
            step(order[s * batch:(s + 1) * batch], rng, ((epoch - 1) * steps + s) / (epochs * steps))
        train_acc, val_acc = evaluate()
        history["train_acc"].append(train_acc)
        history["val_acc"].append(val_acc)
        if val_acc > best["val_acc"]:
            best = dict(val_acc=val_acc, epoch=epoch, state=snapshot())
        progress(tag, epoch, epochs, train_acc, val_acc, start)
    history["train_seconds"] = round(time.perf_counter() - start, 2)
    return history, best


def train_mlp(net, train, val, epochs, batch, lr, seed=0, tag="mlp", lr_final=None, augment=None,
              label_smoothing=0.0):
    """Train net in place; return the accuracy history and the parameters of the best epoch
    (best["state"], on validation).

    Every step calls reset_grad, forward, update_grad, update_params in that order (2.4).
    lr_final: cosine-decay the learning rate from lr to lr_final over the run (else constant).
    augment:  a function (images, rng) -> distorted images, applied to each batch.
    label_smoothing: train towards (1 - s) y + s / 10 instead of the one-hot y (a regulariser).
    After each epoch the accuracy on the whole training subset and the whole validation set is
    recorded; the test split is never seen here.
    """
    x, y = train
    Y = one_hot(y) * (1 - label_smoothing) + label_smoothing / N_CLASSES

    def step(idx, rng, done):
        xb = x[idx] if augment is None else augment(x[idx], rng)
        lr_t = lr if lr_final is None else lr_final + 0.5 * (lr - lr_final) * (1 + np.cos(np.pi * done))
        net.reset_grad()
        net.forward(xb)
        net.update_grad(Y[idx])
        net.update_params(lr_t)

    return run_epochs(len(x), epochs, batch, seed, step,
                      evaluate=lambda: (accuracy(net, x, y), accuracy(net, *val)),
                      snapshot=lambda: {k: v.copy() for k, v in net.params().items()}, tag=tag)


# ============================================================================================
# 2.5 Over-fitting? The specified training on the first 2000 images, then on all 50000.
# ============================================================================================

def overfitting_study(model, cfg, data, out, quick, train, title, **extra):
    """Sections 2.5 and 3.3: the specified training on the first 2000 training images, then on all
    of them, with a plot of the accuracy per epoch for each. train(n, epochs, tag) returns the
    trained network's history and a function that saves it; extra goes into both results."""
    if quick:
        cfg = dict(cfg, small_n=200, epochs_small=QUICK["epochs"], epochs_full=QUICK["epochs"])
    section = {"mlp": "2.5", "cnn": "3.3"}[model]
    results = {}
    for key, n, epochs in ((f"{model}_spec_2000", cfg["small_n"], cfg["epochs_small"]),
                           (f"{model}_spec", len(data["train"][0]), cfg["epochs_full"])):
        history, save = train(n, epochs, f"{section} n={n}")
        plot_history(history, title(n), out, f"{key}_accuracy")
        results[key] = dict(train_n=n, epochs=epochs, batch=SPEC["batch"], lr=SPEC["lr"],
                            final_train_accuracy=history["train_acc"][-1], val_accuracy=history["val_acc"][-1],
                            best_val_accuracy=max(history["val_acc"]), train_seconds=history["train_seconds"],
                            history=history, **extra)
        if key == f"{model}_spec":  # the network of the specified training on all the images
            save(Path(out) / "weights")
    update_results(out, **results)
    return results


def section_2_5(data, out, seed, quick):
    x, y = data["train"]

    def train(n, epochs, tag):
        net = MLP(seed=seed)
        history, _ = train_mlp(net, (x[:n], y[:n]), data["val"], epochs, SPEC["batch"], SPEC["lr"], seed=seed, tag=tag)
        return history, lambda folder: net.save(folder / "mlp_spec.npz")

    return overfitting_study("mlp", MLP_STUDY, data, out, quick, train,
                             title=lambda n: f"MLP, SGD lr {SPEC['lr']}, first {n} training images")


# ============================================================================================
# 2.6 How well does it work? The same network, trained better.
# ============================================================================================

def augment_affine(images, rng, rotate_deg, scale, shear, shift):
    """Random small affine distortions of a batch (B, 784) of 28x28 images, bilinear, in numpy.

    Each output pixel p (centred coordinates) samples the input at A^-1 (p - t): a rotation of up
    to rotate_deg degrees, a scaling by 1 +- scale, a shear of up to +-shear and a shift of up to
    +-shift pixels, drawn independently for each image.
    """
    B = len(images)
    theta = np.deg2rad(rng.uniform(-rotate_deg, rotate_deg, B))
    s = 1 + rng.uniform(-scale, scale, B)
    k = rng.uniform(-shear, shear, B)
    t = rng.uniform(-shift, shift, (B, 2))
    cos, sin = np.cos(theta), np.sin(theta)
    # A = s R(theta) [[1, k], [0, 1]]; its inverse maps output pixels back to input pixels.
    A = s[:, None, None] * np.stack([np.stack([cos, cos * k - sin], -1),
                                     np.stack([sin, sin * k + cos], -1)], -2)
    A_inv = np.linalg.inv(A).astype(np.float32)
    r = np.arange(28, dtype=np.float32) - 13.5
    gx, gy = np.tile(r, 28), np.repeat(r, 28)          # centred (x, y) of each of the 784 pixels
    u = gx - t[:, :1].astype(np.float32)
    v = gy - t[:, 1:].astype(np.float32)
    # Source coordinates, +13.5 back to pixel indices, +1 into the image padded by one zero pixel,
    # so anything sampled from outside the frame reads background.
    sx = np.clip(A_inv[:, 0, :1] * u + A_inv[:, 0, 1:] * v + 14.5, 0, 29 - 1e-3)
    sy = np.clip(A_inv[:, 1, :1] * u + A_inv[:, 1, 1:] * v + 14.5, 0, 29 - 1e-3)
    padded = np.pad(images.reshape(B, 28, 28), ((0, 0), (1, 1), (1, 1))).ravel()
    x0 = sx.astype(np.int32)
    y0 = sy.astype(np.int32)
    wx = sx - x0
    wy = sy - y0
    base = y0 * 30 + x0 + (np.arange(B, dtype=np.int32) * 900)[:, None]
    tl, tr = padded[base], padded[base + 1]
    bl, br = padded[base + 30], padded[base + 31]
    top = tl + wx * (tr - tl)
    return (top + wy * (bl + wx * (br - bl) - top)).astype(np.float32)


def affine_augmenter(augment):
    """The batch distortion a recipe's augment settings ask for (None: train on the images as they are)."""
    return None if augment is None else lambda images, rng: augment_affine(images, rng, **augment)


def train_mlp_best(cfg, data, seed, tag):
    """The 2.6 recipe: Adam with weight decay, cosine learning-rate decay, affine augmentation."""
    net = AdamMLP(weight_decay=cfg["weight_decay"], seed=seed)
    return train_mlp(net, data["train"], data["val"], cfg["epochs"], cfg["batch"], cfg["lr"], seed=seed, tag=tag,
                     lr_final=cfg["lr_final"], label_smoothing=cfg["label_smoothing"],
                     augment=affine_augmenter(cfg["augment"]))


def section_2_6(data, out, seed, quick):
    cfg = dict(MLP_BEST, **(dict(epochs=QUICK["epochs"]) if quick else {}))
    history, best = train_mlp_best(cfg, data, seed, "2.6")
    best_net = MLP()
    for name, value in best["state"].items():
        setattr(best_net, name, value)
    best_net.save(Path(out) / "weights" / "mlp.npz")
    plot_history(history, "MLP of 2.6: Adam, cosine schedule, augmentation", out, "mlp_best_accuracy")
    entry = dict(epochs=cfg["epochs"], best_epoch=best["epoch"], val_accuracy=best["val_acc"],
                 train_seconds=history["train_seconds"], config=cfg, history=history)
    update_results(out, mlp_best=entry)
    return entry


# ============================================================================================
# 2.7 Where does it make mistakes? and 2.8 The rows of W1 as templates.
# ============================================================================================

def confusion_section(model, predict, test, out, title):
    """Sections 2.7 and 3.4: the confusion matrix of a saved network on the test split, as a
    figure and in results.json with the per-digit accuracy and the most frequent mistakes."""
    x, y = test
    C = confusion_matrix(y, predict(x))
    plot_confusion(C, title, out, f"{model}_confusion")
    summary = confusion_summary(C)
    update_results(out, **{f"{model}_confusion": summary})
    return summary


def section_2_7(data, out):
    net = MLP.load(Path(out) / "weights" / "mlp.npz")
    return confusion_section("mlp", net.predict, data["test"], out, "MLP (2.6) on the test set")


def section_2_8(out):
    net = MLP.load(Path(out) / "weights" / "mlp.npz")
    W1 = net.W1
    limit = np.abs(W1).max()  # one symmetric scale for all 64: 0 is white, + red, - blue
    fig, axes = plt.subplots(8, 8, figsize=(7, 7.4))
    for k, ax in enumerate(axes.flat):
        im = ax.imshow(W1[k].reshape(28, 28), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(str(k), fontsize=6, pad=1)
    fig.colorbar(im, ax=axes, shrink=0.6, label="weight")
    save_figure(fig, out, "mlp_templates")



def record_test_accuracy(out, data_dir, predictors):
    """Read the test split -- only here, after all training and every choice -- and record the
    accuracy of each final model: predictors = {results key: function images -> digits}."""
    x, y = load_data(data_dir, splits=("test",))["test"]
    results = read_results(out)
    for key, predict in predictors.items():
        acc = float((predict(x) == y).mean())
        results.setdefault(key, {}).update(test_accuracy=acc, test_n=len(y))
        print(f"[{key}] test accuracy {100 * acc:.2f}% on {len(y)} test images", flush=True)
    update_results(out, **{key: results[key] for key in predictors})


def run_mlp(args):
    """--part mlp: sections 2.5-2.8 (or the one --section names)."""
    sections = [args.section] if args.section else ["2.5", "2.6", "2.7", "2.8"]
    if any(s in ("2.5", "2.6") for s in sections):
        data = load_training_data(args)
    weights = Path(args.out) / "weights"
    for section in sections:
        print(f"== section {section} ==", flush=True)
        if section == "2.5":
            section_2_5(data, args.out, args.seed, args.quick)
        elif section == "2.6":
            section_2_6(data, args.out, args.seed, args.quick)
            record_test_accuracy(args.out, args.data, {
                "mlp_spec": MLP.load(weights / "mlp_spec.npz").predict,
                "mlp_best": MLP.load(weights / "mlp.npz").predict})
        elif section == "2.7":
            section_2_7(load_data(args.data, splits=("test",)), args.out)
        elif section == "2.8":
            section_2_8(args.out)


# ============================================================================================
# 3.1 The template CNN (PyTorch). torch is imported here, on first use, never by Part 1.
# ============================================================================================

def _torch_convnet():
    """Define ConvNet on first use. The layers and forward() follow the PyTorch CIFAR-10 tutorial
    the assignment points to (pytorch.org/tutorials/beginner/blitz/cifar10_tutorial.html), with
    one input channel and fc1 sized for 28x28 MNIST images (16 x 4 x 4 = 256 inputs)."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    class ConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5)      # 1x28x28 -> 6x24x24
            self.pool = nn.MaxPool2d(2, 2)       # halves height and width
            self.conv2 = nn.Conv2d(6, 16, 5)     # 6x12x12 -> 16x8x8
            self.fc1 = nn.Linear(16 * 4 * 4, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            """Flat images (B, 784) or one image (784,) -> class scores (B, 10) or (10,)."""
            single = x.dim() == 1
            x = x.reshape(-1, 1, 28, 28)
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = torch.flatten(x, 1)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            x = self.fc3(x)
            return x[0] if single else x

    return ConvNet


def convnet_class():
    """The ConvNet class, built (and torch imported) on first use, then the same class every time."""
    if "ConvNet" not in globals():
        globals()["ConvNet"] = _torch_convnet()
    return globals()["ConvNet"]


def __getattr__(name):
    """`Project3.ConvNet` builds the class only when somebody asks for it (Part 1 never does)."""
    if name == "ConvNet":
        return convnet_class()
    raise AttributeError(f"module 'Project3' has no attribute {name!r}")


def describe_cnn(net):
    """Section 3.1 from the module itself: one row per layer with its settings, the shape going
    in and out (traced with one image) and its parameter count."""
    import torch
    from torch import nn

    relu = nn.ReLU()  # forward()'s F.relu and torch.flatten, as modules, so every step is traced alike
    layers = [("conv1", net.conv1), ("relu", relu), ("pool", net.pool), ("conv2", net.conv2), ("relu", relu),
              ("pool", net.pool), ("flatten", nn.Flatten()), ("fc1", net.fc1), ("relu", relu), ("fc2", net.fc2),
              ("relu", relu), ("fc3", net.fc3)]
    rows, x = [], torch.zeros(1, 1, 28, 28)
    for name, layer in layers:
        before = list(x.shape[1:])
        x = layer(x)
        row = dict(layer=name, type=type(layer).__name__, input=before, output=list(x.shape[1:]), kernel="",
                   stride="", padding="", params=sum(p.numel() for p in layer.parameters()))
        if hasattr(layer, "kernel_size"):  # Conv2d and MaxPool2d; square kernels here
            pair = lambda v: v if isinstance(v, int) else v[0]  # noqa: E731
            row.update(kernel=f"{pair(layer.kernel_size)}x{pair(layer.kernel_size)}", stride=pair(layer.stride),
                       padding=pair(layer.padding))
        rows.append(row)
    total = sum(p.numel() for p in net.parameters())
    assert total == sum(r["params"] for r in rows)
    return rows, total


def cnn_table_tex(rows, total):
    """The 3.1 table as LaTeX rows, for report.tex to input."""
    dims = lambda s: "$" + r"\times".join(str(d) for d in s) + "$"  # noqa: E731
    lines = [r"\begin{tabular}{llccccr}", r"\toprule",
             r"layer & type & kernel & stride & padding & input $\to$ output & parameters \\", r"\midrule"]
    for r in rows:
        kernel = r["kernel"].replace("x", r"$\times$")
        lines.append(f"{r['layer']} & {r['type']} & {kernel} & {r['stride']} & {r['padding']} & "
                     f"{dims(r['input'])} $\\to$ {dims(r['output'])} & {r['params']:,} \\\\")
    lines += [r"\midrule", f"total & & & & & & {total:,} \\\\", r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines).replace(",", "{,}") + "\n"


def new_convnet(seed):
    """A template ConvNet whose initial weights come from torch's generator seeded with seed."""
    import torch

    torch.manual_seed(seed)
    return convnet_class()()


def section_3_1(out):
    rows, total = describe_cnn(convnet_class()())
    atomic_write(Path(out) / "figures" / "cnn_table.tex", lambda p: p.write_text(cnn_table_tex(rows, total)))
    update_results(out, cnn_architecture=dict(layers=rows, total_params=total))
    return rows, total


# ============================================================================================
# 3.2 Training the CNN, fed straight from the numpy arrays.
# ============================================================================================

def pick_device(name):
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but torch finds no CUDA device on this machine.")
    return name


def cnn_predict(net, x, device, chunk=5000):
    import torch

    net.eval()
    with torch.no_grad():
        out = [net(torch.from_numpy(x[i:i + chunk]).to(device)).argmax(1).cpu() for i in range(0, len(x), chunk)]
    net.train()
    return torch.cat(out).numpy()


def train_cnn(net, train, val, epochs, batch, make_optimizer, device, seed=0, tag="cnn", augment=None,
              label_smoothing=0.0, one_cycle_lr=None):
    """Train net in place (the tutorial's loop: zero_grad, forward, loss, backward, step) and return
    the accuracy history and the state of the best epoch on validation.

    make_optimizer(params) builds the optimiser; one_cycle_lr, if given, is the peak of a one-cycle
    learning-rate schedule stepped every batch; augment distorts each batch (numpy, as in 2.6).
    """
    import torch

    x, y = train
    torch.manual_seed(seed)
    net.to(device)
    optimizer = make_optimizer(net.parameters())
    scheduler = None if one_cycle_lr is None else torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=one_cycle_lr, total_steps=epochs * -(-len(x) // batch))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    y_all = torch.from_numpy(y).to(device)

    def step(idx, rng, done):
        xb = x[idx] if augment is None else augment(x[idx], rng)
        optimizer.zero_grad()
        loss = loss_fn(net(torch.from_numpy(xb).to(device)), y_all[idx])
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()

    def evaluate():
        return (float((cnn_predict(net, x, device) == y).mean()),
                float((cnn_predict(net, val[0], device) == val[1]).mean()))

    return run_epochs(len(x), epochs, batch, seed, step, evaluate,
                      snapshot=lambda: {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}, tag=tag)


def save_cnn(state, path):
    import torch

    atomic_write(path, lambda p: torch.save(state, p))


def load_cnn(path, device="cpu"):
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no saved CNN weights (run `python Project3.py --part cnn` first).")
    net = convnet_class()()
    net.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    return net.to(device)


def sgd_momentum(params):
    """The tutorial's optimiser with the assignment's learning rate."""
    import torch

    return torch.optim.SGD(params, lr=SPEC["lr"], momentum=0.9)


def adam(params):
    """The adaptive reading of "learning rate 0.001": Adam's default step size."""
    import torch

    return torch.optim.Adam(params, lr=SPEC["lr"])


OPTIMISERS = dict(sgd_momentum=(sgd_momentum, "SGD with momentum 0.9"), adam=(adam, "Adam"))


# ============================================================================================
# 3.3 Over-fitting? The same 2000-vs-50000 study as 2.5.
# ============================================================================================

def train_cnn_spec(data, n, epochs, optimiser, seed, device, tag):
    """Sections 3.2-3.3: the template CNN on the first n training images, batch 256, lr 0.001."""
    net = new_convnet(seed)
    x, y = data["train"]
    history, _ = train_cnn(net, (x[:n], y[:n]), data["val"], epochs, SPEC["batch"], OPTIMISERS[optimiser][0], device,
                           seed=seed, tag=tag)
    return net, history


def section_3_3(data, out, seed, quick, device):
    optimiser = CNN_STUDY["optimiser"]
    name = OPTIMISERS[optimiser][1]

    def train(n, epochs, tag):
        net, history = train_cnn_spec(data, n, epochs, optimiser, seed, device, tag)
        return history, lambda folder: save_cnn(net.state_dict(), folder / "cnn_spec.pt")

    return overfitting_study("cnn", CNN_STUDY, data, out, quick, train,
                             title=lambda n: f"CNN, {name} lr {SPEC['lr']}, first {n} training images",
                             optimiser=name, device=device)


# ============================================================================================
# 3.4 How well does it work? The template CNN, trained better.
# ============================================================================================

def train_cnn_best(cfg, data, seed, device, tag):
    """The 3.4 recipe: the template's layers, AdamW, one-cycle schedule, label smoothing, augmentation."""
    import torch

    return train_cnn(
        new_convnet(seed), data["train"], data["val"], cfg["epochs"], cfg["batch"],
        lambda p: torch.optim.AdamW(p, lr=cfg["lr"], weight_decay=cfg["weight_decay"]), device, seed=seed,
        tag=tag, augment=affine_augmenter(cfg["augment"]), label_smoothing=cfg["label_smoothing"],
        one_cycle_lr=cfg["lr"])


def section_3_4(data, out, seed, quick, device):
    cfg = dict(CNN_BEST, **(dict(epochs=QUICK["epochs"]) if quick else {}))
    history, best = train_cnn_best(cfg, data, seed, device, "3.4")
    save_cnn(best["state"], Path(out) / "weights" / "cnn.pt")
    plot_history(history, "CNN of 3.4: AdamW, one-cycle schedule, augmentation", out, "cnn_best_accuracy")
    entry = dict(epochs=cfg["epochs"], best_epoch=best["epoch"], val_accuracy=best["val_acc"],
                 train_seconds=history["train_seconds"], device=device, config=cfg, history=history)
    update_results(out, cnn_best=entry)
    return entry


def section_cnn_confusion(data, out, device):
    net = load_cnn(Path(out) / "weights" / "cnn.pt", device)
    return confusion_section("cnn", lambda x: cnn_predict(net, x, device), data["test"], out,
                             "CNN (3.4) on the test set")


def run_cnn(args):
    """--part cnn: sections 3.1-3.4 (or the one --section names), then the CNN's confusion matrix."""
    device = pick_device(args.device)
    sections = [args.section] if args.section else ["3.1", "3.3", "3.4"]
    if any(s in ("3.2", "3.3", "3.4") for s in sections):
        data = load_training_data(args)
    weights = Path(args.out) / "weights"
    for section in sections:
        print(f"== section {section} ({device}) ==", flush=True)
        if section == "3.1":
            section_3_1(args.out)
        elif section in ("3.2", "3.3"):  # 3.2's training is the one 3.3 runs on 2000 and 50000 images
            section_3_3(data, args.out, args.seed, args.quick, device)
        elif section == "3.4":
            section_3_4(data, args.out, args.seed, args.quick, device)
            record_test_accuracy(args.out, args.data, {
                "cnn_spec": lambda x: cnn_predict(load_cnn(weights / "cnn_spec.pt", device), x, device),
                "cnn_best": lambda x: cnn_predict(load_cnn(weights / "cnn.pt", device), x, device)})
            section_cnn_confusion(load_data(args.data, splits=("test",)), args.out, device)


# ============================================================================================
# Ablation (2.6 and 3.4): what each training method adds, measured on validation only.
# ============================================================================================

def ablation_row(variant, history, device):
    """One row of an ablation table: the best validation accuracy of a run and its epoch."""
    val = history["val_acc"]
    return dict(variant=variant, val_accuracy=max(val), best_epoch=int(np.argmax(val)) + 1, epochs=len(val),
                train_seconds=history["train_seconds"], device=device)


def run_ablation(args):
    """Train each variant of MLP_ABLATION and CNN_ABLATION (slow: run by hand, not by --part all)
    and record its best validation accuracy. The test split is not loaded."""
    data = load_training_data(args)
    quick = dict(epochs=QUICK["epochs"]) if args.quick else {}
    models = []
    if args.which != "cnn":
        models.append(("mlp", MLP_ABLATION, MLP_BEST, "cpu",
                       lambda cfg, tag: train_mlp_best(cfg, data, args.seed, tag)))
    if args.which != "mlp":
        device = pick_device(args.device)
        models.append(("cnn", CNN_ABLATION, CNN_BEST, device,
                       lambda cfg, tag: train_cnn_best(cfg, data, args.seed, device, tag)))
        # 3.2: which reading of "lr 0.001" trains the template better?
        epochs = quick.get("epochs", CNN_STUDY["epochs_full"])
        rows = [ablation_row(f"{OPTIMISERS[optimiser][1]}, lr {SPEC['lr']}, batch {SPEC['batch']}",
                             train_cnn_spec(data, len(data["train"][0]), epochs, optimiser, args.seed, device,
                                            f"ablation cnn: {optimiser}")[1], device)
                for optimiser in CNN_OPTIMISERS]
        update_results(args.out, cnn_optimisers=rows)
    for model, variants, base, where, train in models:
        rows = [ablation_row(name, train({**base, **change, **quick}, f"ablation {model}: {name}")[0], where)
                for name, change in variants]  # --quick's epochs win over a row's own
        update_results(args.out, **{f"{model}_ablation": rows})


# ============================================================================================
# Benchmark: one epoch of this MLP against torch's identical network, same run, same data.
# ============================================================================================

def run_bench(args):
    import torch  # only the benchmark and Part 2 need torch

    x, y = load_data(args.data, splits=("train",))["train"]
    if args.quick:
        x, y = x[:QUICK["train_n"]], y[:QUICK["train_n"]]
    Y = one_hot(y)
    batch, lr = SPEC["batch"], SPEC["lr"]
    order = np.random.default_rng(args.seed).permutation(len(x))
    batches = [order[i:i + batch] for i in range(0, len(x), batch)]

    def numpy_epoch():
        net = MLP(seed=args.seed)
        start = time.perf_counter()
        for idx in batches:
            net.reset_grad()
            net.forward(np.take(x, idx, axis=0))
            net.update_grad(Y[idx])
            net.update_params(lr)
        return time.perf_counter() - start

    torch.manual_seed(args.seed)
    tnet = torch.nn.Sequential(torch.nn.Linear(N_PIXELS, 64), torch.nn.Sigmoid(), torch.nn.Linear(64, N_CLASSES))
    opt = torch.optim.SGD(tnet.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")  # summed, like update_grad
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def torch_epoch():
        start = time.perf_counter()
        for idx in batches:
            idx = torch.from_numpy(idx)
            opt.zero_grad()
            loss_fn(tnet(tx.index_select(0, idx)), ty.index_select(0, idx)).backward()  # torch's fastest gather
            opt.step()
        return time.perf_counter() - start

    repeats = 1 if args.quick else 9
    numpy_epoch(), torch_epoch()  # warm-up: first-call allocations and thread start-up
    # Alternate the two so that a burst of load from elsewhere hits both; keep each one's best.
    times = [(numpy_epoch(), torch_epoch()) for _ in range(repeats)]
    t_numpy, t_torch = min(t for t, _ in times), min(t for _, t in times)
    print(f"one epoch of SGD on {len(x)} images, batch {batch} (best of {repeats}, alternating):")
    print(f"  numpy MLP (this file): {t_numpy:.3f} s")
    print(f"  torch {torch.__version__} ({torch.get_num_threads()} threads): {t_torch:.3f} s")
    print(f"  ratio numpy / torch: {t_numpy / t_torch:.2f}")
    update_results(args.out, bench=dict(images=len(x), numpy_seconds=round(t_numpy, 4),
                                        torch_seconds=round(t_torch, 4), ratio=round(t_numpy / t_torch, 3),
                                        torch_version=torch.__version__))


# ============================================================================================
# Evaluation of the saved networks on a data folder's test split, without training.
# ============================================================================================

def run_eval(args):
    x, y = load_data(args.data, splits=("test",))["test"]
    weights = Path(args.out) / "weights"
    report = {"mlp": dict(accuracy=round(float((MLP.load(weights / "mlp.npz").predict(x) == y).mean()), 4),
                          n=len(y))}
    cnn = weights / "cnn.pt"
    if cnn.is_file():  # Part 2's network, when it has been trained
        try:
            device = pick_device(args.device)  # the first import of torch: the MLP's evaluation never needs it
            predicted = cnn_predict(load_cnn(cnn, device), x, device)
            report["cnn"] = dict(accuracy=round(float((predicted == y).mean()), 4), n=len(y))
        except ModuleNotFoundError as err:
            if err.name != "torch":
                raise
            print(f"note: {cnn} not evaluated: PyTorch is not installed.", file=sys.stderr)
    print(json.dumps(report))


# ============================================================================================
# Report: figures/results.tex (numbers as LaTeX macros), report.pdf, the submission zip.
# ============================================================================================

def pct(fraction):
    return f"{100 * fraction:.2f}"


def tex_number(value):
    """0.003 -> 0.003, 2e-05 -> $2\\times10^{-5}$, 35 -> 35."""
    text = f"{value:g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"${mantissa}\\times10^{{{int(exponent)}}}$"


def device_words(devices):
    """Where runs ran, for the report's sentences: "the CPU", "a CUDA GPU" or "CPU and GPU"."""
    devices = set(devices)
    if len(devices) > 1:
        return "CPU and GPU"
    return "the CPU" if devices == {"cpu"} else "a CUDA GPU"


def results_tex(results):
    """LaTeX macros and tables from results.json, so report.tex never types a number."""
    macros = {}

    def model(prefix, key, bonus_from=None):
        r = results.get(key)
        if r is None:
            return
        macros[f"{prefix}Val"] = pct(r["val_accuracy"])
        macros[f"{prefix}Epochs"] = str(r["epochs"])
        macros[f"{prefix}Seconds"] = f"{r['train_seconds']:.0f}"
        if "test_accuracy" in r:
            macros[f"{prefix}Test"] = pct(r["test_accuracy"])
            macros[f"{prefix}TestN"] = str(r["test_n"])
            macros[f"{prefix}TestErrors"] = str(round((1 - r["test_accuracy"]) * r["test_n"]))
            if bonus_from is not None:
                macros[f"{prefix}Bonus"] = f"{100 * r['test_accuracy'] - bonus_from:+.2f}"
        if "final_train_accuracy" in r:
            macros[f"{prefix}Train"] = pct(r["final_train_accuracy"])
            macros[f"{prefix}Gap"] = f"{100 * (r['final_train_accuracy'] - r['val_accuracy']):.1f}"
            macros[f"{prefix}BestVal"] = pct(r["best_val_accuracy"])
            macros[f"{prefix}Steps"] = f"{r['epochs'] * r['history']['steps_per_epoch']:,}".replace(",", "{,}")
        if "best_epoch" in r:
            macros[f"{prefix}BestEpoch"] = str(r["best_epoch"])
        for name, value in {**r.get("config", {}), **r.get("config", {}).get("augment", {})}.items():
            if not isinstance(value, dict):  # \MlpBestCfgLr, \MlpBestCfgRotatedeg, ...
                macros[f"{prefix}Cfg{name.replace('_', '').capitalize()}"] = tex_number(value)
        if "device" in r:
            macros[f"{prefix}Device"] = device_words([r["device"]])
        seconds = r["train_seconds"] / r["epochs"]
        macros[f"{prefix}SecondsPerEpoch"] = f"{seconds:.2f}" if seconds < 10 else f"{seconds:.1f}"

    for prefix, key, bonus in (("MlpSmall", "mlp_spec_2000", None), ("MlpSpec", "mlp_spec", 90),
                               ("MlpBest", "mlp_best", 90), ("CnnSmall", "cnn_spec_2000", None),
                               ("CnnSpec", "cnn_spec", 98), ("CnnBest", "cnn_best", 98)):
        model(prefix, key, bonus)
    for prefix, key in (("Mlp", "mlp_confusion"), ("Cnn", "cnn_confusion")):
        c = results.get(key)
        if c is None:
            continue
        acc = np.array(c["per_class_accuracy"])
        macros[f"{prefix}HardestDigit"] = str(int(acc.argmin()))
        macros[f"{prefix}HardestAcc"] = pct(acc.min())
        macros[f"{prefix}EasiestDigit"] = str(int(acc.argmax()))
        macros[f"{prefix}EasiestAcc"] = pct(acc.max())
        macros[f"{prefix}TopConfusions"] = ", ".join(
            f"{t['true']}$\\to${t['predicted']} ({t['count']})" for t in c["top_confusions"][:5])
        macros[f"{prefix}PerClass"] = " & ".join(pct(a) for a in acc)
    if "bench" in results:
        b = results["bench"]
        macros.update(BenchNumpy=f"{b['numpy_seconds']:.3f}", BenchTorch=f"{b['torch_seconds']:.3f}",
                      BenchRatio=f"{b['ratio']:.2f}", BenchTorchVersion=b["torch_version"])
    for prefix, key in (("CnnAblation", "cnn_ablation"), ("CnnOptimisers", "cnn_optimisers")):
        if key in results:
            macros[f"{prefix}Device"] = device_words(row.get("device", "cpu") for row in results[key])
    if "cnn_architecture" in results:
        macros["CnnParams"] = f"{results['cnn_architecture']['total_params']:,}".replace(",", "{,}")
    lines = ["% Generated by `python Project3.py --part report` from results.json: do not edit."]
    lines += [f"\\newcommand{{\\{name}}}{{{value}}}" for name, value in sorted(macros.items())]
    return "\n".join(lines) + "\n"


def ablation_tex(rows):
    lines = [r"\begin{tabular}{lrr}", r"\toprule", r"training & best epoch & validation accuracy (\%) \\", r"\midrule"]
    lines += [f"{r['variant']} & {r['best_epoch']}/{r['epochs']} & {pct(r['val_accuracy'])} \\\\" for r in rows]
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"]) + "\n"


def write_results_tex(out):
    results = read_results(out)
    if not results:
        raise DataError(f"{Path(out) / 'figures' / 'results.json'}: no results yet (run --part mlp and --part cnn).")
    figures = Path(out) / "figures"
    atomic_write(figures / "results.tex", lambda p: p.write_text(results_tex(results)))
    for key in ("mlp_ablation", "cnn_ablation", "cnn_optimisers"):
        if key in results:
            atomic_write(figures / f"{key}.tex", lambda p: p.write_text(ablation_tex(results[key])))


def run_report(args):
    """Write figures/results.tex, then build report.pdf from report.tex with latexmk (or pdflatex),
    in the output folder (beside this file unless --out or --quick say otherwise)."""
    import shutil
    import subprocess

    out = Path(args.out).resolve()
    write_results_tex(out)
    tex = HERE / "report.tex"
    if shutil.which("latexmk"):
        commands = [["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", str(tex)]]
    elif shutil.which("pdflatex"):  # twice, for the cross-references
        commands = [["pdflatex", "-interaction=nonstopmode", "-halt-on-error", str(tex)]] * 2
    else:
        raise UserError("LaTeX is not installed: report.pdf needs latexmk or pdflatex (on Debian: apt-get install "
                        "--no-install-recommends texlive-latex-recommended latexmk); figures/results.tex was written.")
    for command in commands:
        run = subprocess.run(command, cwd=out, capture_output=True, text=True)  # figures/ is read from out
        if run.returncode != 0:
            raise UserError(f"LaTeX failed on {tex}; the end of its output:\n{run.stdout[-3000:]}")
    print(f"wrote {out / 'report.pdf'}")


def run_zip(args):
    """ID_Project3.zip with exactly Project3.py and report.pdf, as the assignment asks (no data)."""
    import re
    import zipfile

    if not args.id or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", args.id):
        raise UserError(f"--id must be a plain identifier such as xyz123 (letters, digits, _), found {args.id!r}.")
    pdf = HERE / "report.pdf"
    if not pdf.is_file():
        raise DataError(f"{pdf}: not built yet (run `python Project3.py --part report` first).")
    path = HERE / f"{args.id}_Project3.zip"

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(HERE / "Project3.py", "Project3.py")
            z.write(pdf, "report.pdf")

    atomic_write(path, write)
    print(f"wrote {path}")


def run_all(args):
    """The main job: Part 1, Part 2, then the report."""
    for part in (run_mlp, run_cnn, run_report):
        part(args)


# ============================================================================================
# Command line
# ============================================================================================

PARTS = dict(mlp=run_mlp, cnn=run_cnn, report=run_report, all=run_all, zip=run_zip, ablation=run_ablation,
             bench=run_bench, eval=run_eval)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", required=True, choices=PARTS, help="what to run")
    p.add_argument("--section", choices=["2.5", "2.6", "2.7", "2.8", "3.1", "3.2", "3.3", "3.4"],
                   help="run one section only (2.7 and 2.8 use the saved weights; 3.2 is trained in 3.3)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--data", help="data folder (default: Project3_data or Project3_Data beside this file)")
    p.add_argument("--quick", action="store_true",
                   help="a few seconds' smoke test of every code path, written under quick/ (not figures/)")
    p.add_argument("--out", help="where figures/ and weights/ are written and read (default: beside this "
                                 "file, or quick/ beside it with --quick)")
    p.add_argument("--id", help="--part zip: your directory ID, e.g. xyz123")
    p.add_argument("--which", choices=["mlp", "cnn", "both"], default="both", help="--part ablation: which models")
    p.add_argument("--device", choices=["cpu", "cuda"], help="Part 2's device (default: CUDA when present)")
    args = p.parse_args(argv)
    if args.section and args.part in ("mlp", "cnn") and args.section[0] != {"mlp": "2", "cnn": "3"}[args.part]:
        p.error(f"--section {args.section} is not a section of --part {args.part}")
    if args.out is None:
        args.out = HERE / "quick" if args.quick else HERE
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        PARTS[args.part](args)
    except UserError as err:
        print(f"Project3.py: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        if err.name != "torch":
            raise
        print(f"Project3.py: error: --part {args.part} needs PyTorch, which is not installed here "
              "(pip install -r requirements.txt); --part mlp does not.", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
