"""Project 3: MNIST digits with a multi-layer perceptron in numpy (Part 1) and a CNN in PyTorch (Part 2).

Beside the data folder Project3_data/ (or Project3_Data/), `python Project3.py` runs the whole assignment,
sections 2.5-2.8 then 3.1-3.4, writes figures/, weights/ and figures/results.json beside this file and ends
with each network's test accuracy. --part mlp (no torch needed), --part cnn or --section 2.7 run less, --quick
all on a few hundred images; --help lists the rest. The sections below are the report's. From the standard
library: argparse (command line), json (results.json), pathlib (paths), sys (stderr, exit status)."""
import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # figures go to files; nothing waits for a window
import matplotlib.pyplot as plt  # noqa: E402

try:  # Part 2 only: Part 1 runs on a machine without torch
    import torch
    import torch.nn.functional as F
    Module = torch.nn.Module
except (ImportError, OSError):  # not installed, or a broken install
    torch = F = None
    Module = object

# ==== Configuration: every number a run depends on. =====================================================
HERE = Path(__file__).resolve().parent
DATA_DIR_NAMES = ("Project3_data", "Project3_Data")

# 2.4 and 3.2 as the assignment gives them. In both parts the learning rate multiplies the gradient of
# the loss summed over the batch (update_grad adds up the images' gradients).
SPEC = dict(batch=256, lr=0.001)
MLP_STUDY = dict(small_n=2000, epochs_small=1470, epochs_full=60)    # 2.5: 11,760 steps of 256 each
MLP_BEST = dict(epochs=100, batch=128, lr=3e-3, lr_final=2e-5,      # 2.6: Adam, cosine decay, distortions
                augment=dict(rotate_deg=8.0, scale=0.08, shear=0.10, shift=1.5))
CNN_STUDY = dict(small_n=2000, epochs_small=150, epochs_full=15)     # 3.2-3.3
CNN_BEST = dict(epochs=50, batch=128, lr=3e-3, label_smoothing=0.05,  # 3.4: Adam, one-cycle, distortions
                augment=dict(rotate_deg=12.0, scale=0.10, shear=0.15, shift=2.5))
TRAIN_EVAL_N = 5000  # 2.6 and 3.4 measure training accuracy on the first 5000 training images only
QUICK = dict(train_n=600, val_n=300, epochs=2)  # --quick: every code path in seconds

class UserError(Exception):
    """Something the user can fix (data, weights, options): one sentence on stderr, exit status 2."""

# ==== Data: the three splits, checked and scaled alike before anything is trained. ======================
def find_data_dir(given=None):
    """--data if given, else Project3_data (or Project3_Data) beside this file, else in the working folder."""
    if given is not None and not Path(given).is_dir():
        raise UserError(f"data folder {given} does not exist (given with --data).")
    for folder in [Path(given)] if given else [base / name for base in (HERE, Path.cwd()) for name in DATA_DIR_NAMES]:
        if folder.is_dir():
            return folder
    raise UserError(f"no data folder found: expected {' or '.join(DATA_DIR_NAMES)} beside {HERE / 'Project3.py'} "
                    f"or in {Path.cwd()} (or pass --data DIR).")

def read_npy(path):
    if not path.is_file():
        raise UserError(f"{path}: file not found.")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as err:  # truncated, not .npy at all, or an array of Python objects
        raise UserError(f"{path}: not a readable .npy array ({type(err).__name__}: {err}).") from None
    if not isinstance(array, np.ndarray):  # np.load opens an .npz archive whatever its name
        array.close()
        raise UserError(f"{path}: an .npz archive renamed .npy; expected one array saved with np.save.")
    return array

def load_data(folder, splits=("train", "val", "test")):
    """{split: (images float32 (N, 784) in [0, 1], labels int64 (N,))}, every split checked first.

    Scaling rule, decided once from the largest pixel M over the splits read, so that all are scaled
    alike whatever their dtype: M <= 1 means the images are in [0, 1] already; 128 <= M <= 255 means
    grey levels, divided by 255. Anything else (a negative pixel, 1 < M < 128, M > 255) is refused.
    """
    raw = {}
    for split in splits:
        img, lab = folder / f"MNIST_{split}_images.npy", folder / f"MNIST_{split}_labels.npy"
        images, labels = read_npy(img), read_npy(lab)
        if images.ndim == 3 and images.shape[1:] == (28, 28):
            images = images.reshape(len(images), 784)
        if images.ndim != 2 or images.shape[1] != 784:
            raise UserError(f"{img}: expected images of shape (N, 784) or (N, 28, 28), found {images.shape}.")
        if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
            raise UserError(f"{img}: expected integer or floating-point pixels, found dtype {images.dtype}.")
        if len(images) == 0:
            raise UserError(f"{img}: the {split} split is empty (0 images).")
        if not np.isfinite(images).all():
            raise UserError(f"{img}: {np.count_nonzero(~np.isfinite(images))} pixels are NaN or infinite.")
        if labels.shape != (len(images),):
            raise UserError(f"{lab}: expected {len(images)} labels, one per image in {img.name}, found an array "
                            f"of shape {labels.shape}.")
        if not np.issubdtype(labels.dtype, np.integer):
            raise UserError(f"{lab}: expected integer labels, found dtype {labels.dtype}.")
        if labels.min() < 0 or labels.max() > 9:
            raise UserError(f"{lab}: labels must lie in 0-9, found values from {labels.min()} to {labels.max()}.")
        raw[split] = images, labels.astype(np.int64)
    highs = {split: float(images.max()) for split, (images, _) in raw.items()}
    low, high = min(float(images.min()) for images, _ in raw.values()), max(highs.values())
    if low < 0 or 1 < high < 128 or high > 255 or min(highs.values()) <= 1 < high:  # the last: splits differ
        raise UserError(f"{folder}: pixels range from {low:g} to {high:g}, so their scale is in doubt (largest per "
                        f"split: {highs}); expected all in [0, 1] (largest at most 1) or all 0-255 (largest >= 128).")
    return {split: (images.astype(np.float32) / (255 if high > 1 else 1), labels)
            for split, (images, labels) in raw.items()}

# ==== Outputs: every file appears whole or not at all; results.json is shared by the sections. ==========
def write_atomically(path, write):
    """write(temporary path) beside path, then rename it onto path: a reader sees the old file or the
    new one, never half of one, and the temporary is gone after any failure, Ctrl-C included."""
    tmp = path.with_name(f".{path.name}.{time.time_ns()}.{np.random.default_rng().integers(1 << 30)}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)

def read_results(out):
    path = out / "figures" / "results.json"
    try:
        results = json.loads(path.read_text()) if path.is_file() else {}
        if not isinstance(results, dict):
            raise ValueError(f"expected an object, found {type(results).__name__}")
        return results
    except ValueError as err:
        raise UserError(f"{path} is not valid JSON ({err}); restore it (git checkout) or delete it.") from None

def update_results(out, merge=False, **entries):
    """Set entries in results.json (merge: add to the dicts there) under a lock, so concurrent runs all land."""
    lock = out / "figures" / ".results.json.lock"
    for attempt in range(1201):  # wait up to a minute for another run's update to finish
        try:
            lock.touch(exist_ok=False)
            break
        except FileExistsError:
            if attempt == 1200:
                raise UserError(f"{lock} has been held by another run for a minute; delete it if no run is going.")
            time.sleep(0.05)
    try:
        results = read_results(out)
        results.update({k: {**results.get(k, {}), **v} if merge else v for k, v in entries.items()})
        write_atomically(out / "figures" / "results.json",
                         lambda p: p.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n"))
    finally:
        lock.unlink(missing_ok=True)

def read_weights(path, shapes, what, part):
    """{name: float32 array} from an .npz written by np.savez, read without pickle; every array named in
    shapes must be there, of that shape, with finite values. Anything else is a UserError."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            found = {name: saved[name].astype(np.float32) for name in shapes}
    except Exception as err:  # missing, truncated, not an .npz, or without one of the arrays
        raise UserError(f"{path}: no readable {what} weights ({type(err).__name__}: {err}); run "
                        f"`python Project3.py --part {part}` (with the same --out) to make them.") from None
    for name, shape in shapes.items():
        if found[name].shape != shape or not np.isfinite(found[name]).all():
            raise UserError(f"{path}: expected {name} of shape {shape} with finite values, found shape "
                            f"{found[name].shape} with {np.count_nonzero(~np.isfinite(found[name]))} NaN or "
                            "infinite values.")
    return found

plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 8,  # 8 pt as printed
                     "axes.formatter.min_exponent": 4})  # log axes read 0.05, 0.1, 0.2 rather than 5x10^-2

def save_figure(fig, out, name):  # PDF for the report, PNG to look at
    for ext in ("pdf", "png"):
        write_atomically(out / "figures" / f"{name}.{ext}",
                         lambda p: fig.savefig(p, format=ext, dpi=200, bbox_inches="tight"))
    plt.close(fig)

# ==== 2.1-2.3 The MLP: 784 -> 64 sigmoid -> 10 softmax, back-propagation by hand. =======================
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
        return dict(W1=self.W1, b1=self.b1, W2=self.W2, b2=self.b2)

    def forward(self, x):  # 2.1; keeps every intermediate for update_grad
        x = np.asarray(x, dtype=self.W1.dtype)  # float32 here; float64 works too, for gradient checks
        self.single = x.ndim == 1
        self.x = x.reshape(1, -1) if self.single else x
        self.a1 = self.x @ self.W1.T + self.b1   # a1 = W1 x + b1
        self.f1 = sigmoid(self.a1)               # f1 = sigma(a1)
        self.a2 = self.f1 @ self.W2.T + self.b2  # a2 = W2 f1 + b2
        self.y_hat = softmax(self.a2)            # y_hat = softmax(a2)
        return self.y_hat[0] if self.single else self.y_hat

    def loss(self, y):
        """Cross-entropy -sum y log y_hat of the last forward pass, summed over its images, from a2
        (log-softmax), so that it stays finite where y_hat underflows to 0."""
        return float(-(np.reshape(y, self.a2.shape) * log_softmax(self.a2)).sum())

    def reset_grad(self):  # 2.3.2: the gradients that update_grad adds to
        self.W1_grad, self.b1_grad = np.zeros_like(self.W1), np.zeros_like(self.b1)
        self.W2_grad, self.b2_grad = np.zeros_like(self.W2), np.zeros_like(self.b2)

    def update_grad(self, y):
        """Add dL/dtheta of the last forward pass's cross-entropy, summed over its images (2.3.2).

        Each line is a chain rule of 2.3.1 for row vectors, stacked over the batch (a row per image):
          dL/da2 = y_hat - y
          dL/db2 = dL/da2 . da2/db2  (= I)                  -> summed over the rows
          dL/dW2 = dL/da2 . da2/dW2  (= I kron f1^T)        -> (dL/da2)^T f1
          dL/df1 = dL/da2 . da2/df1  (= W2)
          dL/da1 = dL/df1 . df1/da1  (= diag(f1 (1 - f1)))
          dL/db1 = dL/da1 . da1/db1  (= I),  dL/dW1 = dL/da1 . da1/dW1  (= I kron x^T) -> (dL/da1)^T x
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
        def write(tmp):
            with open(tmp, "wb") as f:  # a file, not a name: np.savez would add .npz to the name
                np.savez(f, **self.params())
        write_atomically(path, write)

    @classmethod
    def load(cls, path):
        """Weights written by save(); missing, damaged, mis-shaped or non-finite ones are a UserError."""
        net = cls()
        shapes = {name: theta.shape for name, theta in net.params().items()}
        for name, theta in read_weights(path, shapes, "MLP", "mlp").items():
            setattr(net, name, theta)
        return net

class AdamMLP(MLP):
    """The same network; update_params takes an Adam step (Kingma and Ba, 2015) instead of a plain one (2.6)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.t = 0  # steps taken
        self.m = {k: np.zeros_like(v) for k, v in self.params().items()}  # running mean of the gradient
        self.v = {k: np.zeros_like(v) for k, v in self.params().items()}  # ... and of its square

    def update_params(self, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.t += 1
        for name, theta in self.params().items():
            g = getattr(self, f"{name}_grad")
            self.m[name] += (1 - beta1) * (g - self.m[name])  # m <- beta1 m + (1 - beta1) g
            self.v[name] += (1 - beta2) * (g * g - self.v[name])
            m_hat, v_hat = self.m[name] / (1 - beta1 ** self.t), self.v[name] / (1 - beta2 ** self.t)
            theta -= lr * m_hat / (np.sqrt(v_hat) + eps)

# ==== 2.4 Training: mini-batch SGD, the four calls in order; accuracy and loss after every epoch. =======
def batches(n, batch, rng):  # one epoch's mini-batches: a fresh random order of the n images, cut up
    order = rng.permutation(n)
    return [order[i:i + batch] for i in range(0, n, batch)]

def train_epoch(net, x, Y, batch, lr, rng, augment=None):
    """One pass over the images x (one-hot targets Y) in random mini-batches; returns the number of steps."""
    minibatches = batches(len(x), batch, rng)
    for idx in minibatches:
        xb = x.take(idx, axis=0) if augment is None else augment_affine(x.take(idx, axis=0), rng, **augment)
        net.reset_grad()
        net.forward(xb)
        net.update_grad(Y[idx])
        net.update_params(lr)
    return len(minibatches)

def mlp_log_probs(net, x, chunk=10000):  # log y_hat of every image, a chunk at a time
    log_probs = []
    for i in range(0, len(x), chunk):
        net.forward(x[i:i + chunk])
        log_probs.append(log_softmax(net.a2))
    return np.concatenate(log_probs)

def scores(log_probs, y):  # (accuracy, mean cross-entropy) from log-probabilities (N, 10) and true digits
    return float(np.mean(log_probs.argmax(axis=1) == y)), float(-log_probs[np.arange(len(y)), y].mean())

def log_epoch(history, tag, epoch, epochs, steps, train, val, start):
    """Record and print an epoch's (accuracy, loss) on training and validation images; True if best so far."""
    best = max(history.get("val_acc", [-1]))
    for key, value in zip(("step", "train_acc", "train_loss", "val_acc", "val_loss"), (steps, *train, *val)):
        history.setdefault(key, []).append(round(value, 5))
    elapsed = time.perf_counter() - start
    print(f"[{tag}] epoch {epoch}/{epochs}  train {100 * train[0]:.2f}%  val {100 * val[0]:.2f}%  "
          f"{elapsed:.1f}s, ETA {elapsed / epoch * (epochs - epoch):.0f}s", flush=True)
    return history["val_acc"][-1] > best

def train_mlp(net, data, epochs, batch, lr, seed, tag, lr_final=None, augment=None, train_eval_n=None):
    """Train net in place; returns the history of every epoch (the training images, or the first train_eval_n,
    and validation) and the best epoch's weights. lr_final: cosine decay of the learning rate towards it."""
    x, y = data["train"]
    Y = np.eye(10, dtype=np.float32)[y]  # one-hot targets
    rng = np.random.default_rng(seed)
    history, best, start, steps = {}, None, time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        lr_now = lr if lr_final is None else lr_final + (lr - lr_final) * (1 + np.cos(np.pi * (epoch - 1) / epochs)) / 2
        steps += train_epoch(net, x, Y, batch, lr_now, rng, augment)
        train = scores(mlp_log_probs(net, x[:train_eval_n]), y[:train_eval_n])
        if log_epoch(history, tag, epoch, epochs, steps, train,
                     scores(mlp_log_probs(net, data["val"][0]), data["val"][1]), start):
            best = dict(val_acc=history["val_acc"][-1], params={k: v.copy() for k, v in net.params().items()})
    return history, best

# ==== 2.5 Over-fitting? The specified training on the first 2000 images, then on all 50000. =============
def plot_curves(runs, title, out, name, ylim=50, train_label="training images"):
    """Accuracy and loss against gradient steps, a row per run, on shared axes so that runs compare by eye."""
    fig, axes = plt.subplots(len(runs), 2, figsize=(6.3, 0.45 + 1.6 * len(runs)), sharex=True, sharey="col",
                             squeeze=False)
    for (label, h), row in zip(runs, axes):
        for ax, what, scale in zip(row, ("acc", "loss"), (100, 1)):
            ax.plot(h["step"], scale * np.array(h[f"train_{what}"]), label=train_label)
            ax.plot(h["step"], scale * np.array(h[f"val_{what}"]), label="validation images")
            ax.grid(alpha=0.3)
        row[0].set(title=f"{label}: accuracy", ylabel="accuracy (%)", ylim=(ylim, 100.3))
        row[1].set(title=f"{label}: loss", ylabel="cross-entropy per image", yscale="log")
    for ax in axes[-1]:  # (fig.supxlabel needs matplotlib >= 3.4)
        ax.set_xlabel("gradient steps")
    axes[0, 0].legend(loc="lower right")
    fig.suptitle(title, fontsize=8.5)
    fig.tight_layout()
    save_figure(fig, out, name)

def test_scores(log_probs, test):  # the test split is read only here, once a network's training is over
    return dict(test_accuracy=scores(log_probs, test[1])[0], test_n=len(test[1]))

def summary(history, start, **entries):  # what results.json keeps of a training run
    return dict(epochs=len(history["step"]), steps=history["step"][-1], final_train_accuracy=history["train_acc"][-1],
                final_val_accuracy=history["val_acc"][-1], best_val_accuracy=max(history["val_acc"]),
                best_epoch=int(np.argmax(history["val_acc"])) + 1, train_seconds=round(time.perf_counter() - start, 1),
                history=history, **entries)

def section_2_5(data, args):
    x, y = data["train"]
    runs, entries, small_n = [], {}, len(x) // 3 if args.quick else MLP_STUDY["small_n"]
    for key, n, epochs in (("mlp_spec_2000", small_n, MLP_STUDY["epochs_small"]),
                           ("mlp_spec", len(x), MLP_STUDY["epochs_full"])):
        epochs = QUICK["epochs"] if args.quick else epochs
        start = time.perf_counter()
        net = MLP(seed=args.seed)
        history, _ = train_mlp(net, dict(train=(x[:n], y[:n]), val=data["val"]), epochs, SPEC["batch"],
                               SPEC["lr"], args.seed, f"2.5, {n} images")
        entries[key] = summary(history, start, train_n=n, val_accuracy=history["val_acc"][-1])
        runs.append((f"{'first' if n < len(x) else 'all'} {n} images, {epochs} epochs", history))
    net.save(args.out / "weights" / "mlp_spec.npz")  # the network trained on all the images
    entries["mlp_spec"].update(test_scores(mlp_log_probs(net, data["test"][0]), data["test"]))
    plot_curves(runs, f"MLP: SGD, learning rate {SPEC['lr']} on the summed loss, batch {SPEC['batch']}", args.out,
                "mlp_study")
    update_results(args.out, **entries)

# ==== 2.6 How well does it work? The same network, trained better. ======================================
CENTRED_GRID = np.stack([np.tile(np.arange(28) - 13.5, 28), np.repeat(np.arange(28) - 13.5, 28),
                         np.ones(784)]).astype(np.float32)  # (x, y, 1) of each pixel, about the centre

def random_affine(B, rng, rotate_deg, scale, shear, shift):
    """B random affine maps (B, 2, 3), float32, in pixels about the image centre: output pixel p reads
    the input at A^-1 (p - t), A rotating by up to rotate_deg degrees, scaling by 1 +- scale and
    shearing by up to +-shear, t a shift of up to +-shift pixels. Both parts' distortions use them."""
    theta = np.deg2rad(rng.uniform(-rotate_deg, rotate_deg, B))
    s = 1 + rng.uniform(-scale, scale, B)
    k = rng.uniform(-shear, shear, B)
    t = rng.uniform(-shift, shift, (B, 2, 1))
    cos, sin = np.cos(theta), np.sin(theta)
    A = s[:, None, None] * np.stack([np.stack([cos, cos * k - sin], -1), np.stack([sin, sin * k + cos], -1)], -2)
    A_inv = np.linalg.inv(A)
    return np.concatenate([A_inv, -A_inv @ t], axis=2).astype(np.float32)

def augment_affine(images, rng, **distortion):
    """Random affine distortions of a batch (B, 784) of 28x28 images, with bilinear interpolation."""
    B = len(images)
    src = (random_affine(B, rng, **distortion).reshape(2 * B, 3) @ CENTRED_GRID).reshape(B, 2, 784)
    src = np.clip(src + 14.5, 0, 28.999)  # to pixel indices, +1 into the image padded by a ring of zeros
    corner = np.floor(src)
    wx, wy = (src - corner).transpose(1, 0, 2)  # bilinear weights
    i = (corner[:, 1] * 30 + corner[:, 0]).astype(np.intp) + np.arange(0, 900 * B, 900)[:, None]
    padded = np.pad(images.reshape(B, 28, 28), ((0, 0), (1, 1), (1, 1))).ravel()
    top = padded.take(i) * (1 - wx) + padded.take(i + 1) * wx
    bottom = padded.take(i + 30) * (1 - wx) + padded.take(i + 31) * wx
    return top * (1 - wy) + bottom * wy

def section_2_6(data, args):
    cfg = dict(MLP_BEST, epochs=QUICK["epochs"]) if args.quick else MLP_BEST
    start = time.perf_counter()
    net = AdamMLP(seed=args.seed)
    history, best = train_mlp(net, data, cfg["epochs"], cfg["batch"], cfg["lr"], args.seed, "2.6", cfg["lr_final"],
                              cfg["augment"], TRAIN_EVAL_N)
    for name, theta in net.params().items():
        theta[...] = best["params"][name]  # the weights of the best epoch on validation
    net.save(args.out / "weights" / "mlp.npz")
    plot_curves([(f"{cfg['epochs']} epochs", history)], "MLP of 2.6: Adam, cosine learning-rate decay, random "
                "affine distortions", args.out, "mlp_best_training", 90, f"first {TRAIN_EVAL_N} training images")
    update_results(args.out, mlp_best=summary(history, start, val_accuracy=best["val_acc"], config=cfg,
                                              **test_scores(mlp_log_probs(net, data["test"][0]), data["test"])))

# ==== 2.7 Where does it make mistakes? (The CNN's, in 3.4, too.) ========================================
def confusion_section(key, predicted, test, out, title):
    """The 10x10 confusion matrix on the test split, C[i, j] = images of digit i predicted as j, and the
    test images behind its largest off-diagonal counts."""
    x, y = test
    C = np.zeros((10, 10), dtype=np.int64)
    np.add.at(C, (y, predicted), 1)
    pairs = sorted(((int(C[i, j]), i, j) for i in range(10) for j in range(10) if i != j and C[i, j]), reverse=True)
    fig, ax = plt.subplots(figsize=(3.3, 3.15))
    ax.imshow(np.log1p(C), cmap="Blues")  # log scale: the mistakes show beside the diagonal
    for i, j in np.ndindex(C.shape):
        ax.text(j, i, C[i, j], ha="center", va="center", color="white" if i == j else "black")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted digit", ylabel="true digit", title=title)
    save_figure(fig, out, f"{key}_confusion")
    fig, axes = plt.subplots(6, 6, figsize=(3.2, 3.4), subplot_kw=dict(xticks=[], yticks=[], frame_on=False))
    for row, (count, i, j) in zip(axes, pairs):  # up to 6 images of each of the 6 most frequent mistakes
        for ax, k in zip(row, np.flatnonzero((y == i) & (predicted == j))):
            ax.imshow(x[k].reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
        row[0].set_ylabel(f"{i}$\\to${j} ({count})", rotation=0, ha="right", va="center")
    fig.suptitle(f"{title}: mistakes, true$\\to$predicted (count)", fontsize=8)
    save_figure(fig, out, f"{key}_mistakes")
    update_results(out, **{f"{key}_confusion": dict(
        matrix=C.tolist(), per_class_accuracy=(np.diag(C) / np.maximum(C.sum(axis=1), 1)).round(4).tolist(),
        top_confusions=[dict(true=i, predicted=j, count=c) for c, i, j in pairs[:8]])})

def section_2_7(data, args):
    net = MLP.load(args.out / "weights" / "mlp.npz")
    confusion_section("mlp", mlp_log_probs(net, data["test"][0]).argmax(axis=1), data["test"], args.out, "MLP of 2.6")

# ==== 2.8 The rows of W1 as 28x28 templates, as specified (2.5) and trained better (2.6). ===============
def section_2_8(data, args):
    weights = args.out / "weights"
    nets = {"mlp_spec": MLP.load(weights / "mlp_spec.npz"), "mlp_best": MLP.load(weights / "mlp.npz")}
    fig, panels = plt.subplots(1, 2, figsize=(6.3, 3.3))
    for ax, (key, net), name in zip(panels, nets.items(), ("as specified (2.5)", "trained better (2.6)")):
        tiles = net.W1 / np.abs(net.W1).max(axis=1, keepdims=True)  # each row on its own symmetric scale
        tiles = np.pad(tiles.reshape(8, 8, 28, 28), ((0, 0), (0, 0), (0, 1), (0, 1)), constant_values=np.nan)
        ax.imshow(tiles.transpose(0, 2, 1, 3).reshape(8 * 29, 8 * 29), cmap="RdBu_r", vmin=-1, vmax=1)  # 8x8 tiles
        ax.set_axis_off()
        ax.set_title(f"the 64 rows of $W_1$, {name}")
    save_figure(fig, args.out, "mlp_templates")
    blank = data["train"][0].max(axis=0) == 0  # pixels that are 0 in every training image
    rms = lambda w: float(np.sqrt(np.mean(w ** 2)))  # noqa: E731
    update_results(args.out, mlp_templates=dict(blank_pixels=int(blank.sum()), **{
        key: dict(rms_blank=rms(net.W1[:, blank]), rms_inked=rms(net.W1[:, ~blank])) for key, net in nets.items()}))

# ==== 3.1 The template CNN. ==========================================================================
class ConvNet(Module):
    """The template network: layers and forward() from the PyTorch tutorial "Training a classifier" (pytorch.org/
    tutorials/beginner/blitz/cifar10_tutorial.html), for 1 input channel and 28x28 images (fc1: 16x4x4 inputs)."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 6, 5)        # 1x28x28 -> 6x24x24
        self.pool = torch.nn.MaxPool2d(2, 2)         # halves height and width
        self.conv2 = torch.nn.Conv2d(6, 16, 5)       # 6x12x12 -> 16x8x8
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

def section_3_1(data, args):  # from the module: each step of forward(), its settings, shapes and parameters
    net, relu, rows, x = ConvNet(), torch.nn.ReLU(), [], torch.zeros(1, 1, 28, 28)
    for name, layer in (("conv1", net.conv1), ("relu", relu), ("pool", net.pool), ("conv2", net.conv2), ("relu", relu),
                        ("pool", net.pool), ("flatten", torch.nn.Flatten()), ("fc1", net.fc1), ("relu", relu),
                        ("fc2", net.fc2), ("relu", relu), ("fc3", net.fc3)):
        before, x = list(x.shape[1:]), layer(x)
        settings = {k: getattr(layer, k) for k in ("kernel_size", "stride", "padding") if hasattr(layer, k)}
        rows.append(dict(layer=name, type=type(layer).__name__, input=before, output=list(x.shape[1:]),
                         params=sum(p.numel() for p in layer.parameters()),
                         **{k: v if isinstance(v, int) else v[0] for k, v in settings.items()}))  # square here
        print(f"  {name:8}{rows[-1]['type']:10}{str(before):>12} -> {str(rows[-1]['output']):12}{rows[-1]['params']:6}")
    update_results(args.out, cnn_architecture=dict(layers=rows, total_params=sum(p.numel() for p in net.parameters())))

# ==== 3.2 Training the CNN: the tutorial's loop, fed straight from the numpy arrays. ====================
def distort(images, maps):
    """augment_affine's distortions in torch: the same maps, shifts rescaled to affine_grid's [-1, 1] coordinates."""
    theta = torch.from_numpy(maps).to(images.device)
    theta[:, :, 2] /= 14
    grid = F.affine_grid(theta, [len(images), 1, 28, 28], align_corners=False)
    return F.grid_sample(images.reshape(-1, 1, 28, 28), grid, align_corners=False).reshape(-1, 784)

def cnn_log_probs(net, x, chunk=500):
    """log softmax of the class scores of every image; small chunks keep each layer's output in cache."""
    device = next(net.parameters()).device
    net.eval()
    with torch.no_grad():
        log_probs = [F.log_softmax(net(torch.from_numpy(x[i:i + chunk]).to(device)), 1).cpu()
                     for i in range(0, len(x), chunk)]
    net.train()
    return torch.cat(log_probs).numpy()

def train_cnn(net, data, epochs, batch, optimizer, loss_fn, seed, tag, scheduler=None, augment=None,
              train_eval_n=None):
    """Train net in place, as train_mlp does the MLP; returns the history and the best epoch's weights."""
    x, y = data["train"]
    device = next(net.parameters()).device
    x_all, y_all = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    rng = np.random.default_rng(seed)
    history, best, start, steps = {}, None, time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        for idx in batches(len(x), batch, rng):
            steps += 1
            idx = torch.from_numpy(idx).to(device)
            inputs, labels = x_all[idx], y_all[idx]
            if augment is not None:
                inputs = distort(inputs, random_affine(len(idx), rng, **augment))
            optimizer.zero_grad()
            loss = loss_fn(net(inputs), labels)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        train = scores(cnn_log_probs(net, x[:train_eval_n]), y[:train_eval_n])
        if log_epoch(history, tag, epoch, epochs, steps, train,
                     scores(cnn_log_probs(net, data["val"][0]), data["val"][1]), start):
            best = dict(val_acc=history["val_acc"][-1], state={k: v.clone() for k, v in net.state_dict().items()})
    return history, best

def save_cnn(net, path):  # the state dict as plain arrays: no pickle to write, none to read
    write_atomically(path, lambda tmp: np.savez(open(tmp, "wb"), **{k: v.cpu().numpy() for k, v in net.state_dict().items()}))

def load_cnn(path, device):
    """Weights written by save_cnn (an .npz read without pickle); anything wrong with them is a UserError."""
    if not path.is_file() and path.with_suffix(".pt").is_file():
        raise UserError(f"{path.with_suffix('.pt')} holds the CNN in the old pickle format, which is never read; "
                        f"remake it with `python Project3.py --part cnn` or convert it with tools/convert_weights.py.")
    net = ConvNet()
    shapes = {name: tuple(tensor.shape) for name, tensor in net.state_dict().items()}
    net.load_state_dict({k: torch.from_numpy(v) for k, v in read_weights(path, shapes, "the template CNN", "cnn").items()})
    return net.to(device)

# ==== 3.3 Over-fitting? The 3.2 training on the first 2000 images, then on all 50000, as in 2.5. ========
def section_3_3(data, args):
    x, y = data["train"]
    runs, entries, small_n = [], {}, len(x) // 3 if args.quick else CNN_STUDY["small_n"]
    for key, n, epochs in (("cnn_spec_2000", small_n, CNN_STUDY["epochs_small"]),
                           ("cnn_spec", len(x), CNN_STUDY["epochs_full"])):
        epochs = QUICK["epochs"] if args.quick else epochs
        start = time.perf_counter()
        torch.manual_seed(args.seed)  # the initial weights
        net = ConvNet().to(args.device)
        optimizer = torch.optim.SGD(net.parameters(), lr=SPEC["lr"])  # plain SGD, as in 2.4,
        loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")         # on the loss summed over the batch
        history, _ = train_cnn(net, dict(train=(x[:n], y[:n]), val=data["val"]), epochs, SPEC["batch"], optimizer,
                               loss_fn, args.seed, f"3.3, {n} images")
        entries[key] = summary(history, start, train_n=n, val_accuracy=history["val_acc"][-1])
        runs.append((f"{'first' if n < len(x) else 'all'} {n} images, {epochs} epochs", history))
    save_cnn(net, args.out / "weights" / "cnn_spec.npz")  # the network trained on all the images
    entries["cnn_spec"].update(test_scores(cnn_log_probs(net, data["test"][0]), data["test"]))
    plot_curves(runs, f"CNN: SGD, learning rate {SPEC['lr']} on the summed loss, batch {SPEC['batch']}", args.out,
                "cnn_study")
    update_results(args.out, **entries)

# ==== 3.4 How well does it work? The template CNN, trained better. ======================================
class SmoothedCrossEntropy(Module):
    """Cross-entropy with label smoothing s (Szegedy et al. 2016), written out: the target puts 1 - s + s/10
    on the true digit and s/10 on every digit, so the loss is (1 - s) (-log p_true) + s mean_j(-log p_j)."""

    def __init__(self, smoothing):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, scores, labels):
        log_probs = F.log_softmax(scores, dim=1)
        true = -log_probs.gather(1, labels[:, None])[:, 0]
        return ((1 - self.smoothing) * true - self.smoothing * log_probs.mean(dim=1)).mean()

def smoothed_cross_entropy(smoothing):  # torch's own where it has one (torch >= 1.10), else the same loss written out
    try:
        return torch.nn.CrossEntropyLoss(label_smoothing=smoothing)
    except TypeError:
        return SmoothedCrossEntropy(smoothing)

def train_cnn_best(cfg, data, seed, device):
    """The 3.4 recipe: Adam with a one-cycle learning rate, label smoothing, random affine distortions."""
    torch.manual_seed(seed)  # the initial weights
    net = ConvNet().to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    steps = cfg["epochs"] * -(-len(data["train"][0]) // cfg["batch"])  # epochs x ceil(images / batch)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg["lr"], total_steps=steps)
    loss_fn = smoothed_cross_entropy(cfg["label_smoothing"])
    history, best = train_cnn(net, data, cfg["epochs"], cfg["batch"], optimizer, loss_fn, seed, "3.4", scheduler,
                              cfg["augment"], TRAIN_EVAL_N)
    net.load_state_dict(best["state"])  # the weights of the best epoch on validation
    return net, history, best

def section_3_4(data, args):
    cfg = dict(CNN_BEST, epochs=QUICK["epochs"]) if args.quick else CNN_BEST
    start = time.perf_counter()
    net, history, best = train_cnn_best(cfg, data, args.seed, args.device)
    save_cnn(net, args.out / "weights" / "cnn.npz")
    plot_curves([(f"{cfg['epochs']} epochs", history)], "CNN of 3.4: Adam, one-cycle learning rate, label smoothing, "
                "random affine distortions", args.out, "cnn_best_training", 95, f"first {TRAIN_EVAL_N} training images")
    log_probs = cnn_log_probs(net, data["test"][0])
    update_results(args.out, cnn_best=summary(history, start, val_accuracy=best["val_acc"], config=cfg,
                                              device=args.device, **test_scores(log_probs, data["test"])))
    confusion_section("cnn", log_probs.argmax(axis=1), data["test"], args.out, "CNN of 3.4")

# ==== The command line: the grader's run, a part, a section, or the saved networks on a test split. =====
SECTIONS = {"2.5": section_2_5, "2.6": section_2_6, "2.7": section_2_7, "2.8": section_2_8,  # 3.3 runs 3.2's
            "3.1": section_3_1, "3.3": section_3_3, "3.4": section_3_4}                    # training
NETWORKS = (("mlp_spec", "MLP as specified (2.5)", None), ("mlp_best", "MLP trained better (2.6)", 90),
            ("cnn_spec", "CNN as specified (3.2)", None), ("cnn_best", "CNN trained better (3.4)", 98))  # credit above

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["all", "mlp", "cnn", "eval"], default="all",
                   help="all (default): Part 1, then Part 2; eval: the saved networks on the test split")
    p.add_argument("--section", choices=["2.5", "2.6", "2.7", "2.8", "3.1", "3.2", "3.3", "3.4"], help="one section")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("--data", help="data folder (default: Project3_data or Project3_Data beside this file)")
    p.add_argument("--out", help="where figures/ and weights/ go (default: beside this file; quick/ with --quick)")
    p.add_argument("--quick", action="store_true", help="a few hundred images and 2 epochs: every path in seconds")
    p.add_argument("--device", choices=["cpu", "cuda"], help="Part 2's device (default: CUDA if there is one)")
    args = p.parse_args(argv)
    if args.section and args.part not in ("all", {"2": "mlp", "3": "cnn"}[args.section[0]]):
        p.error(f"--section {args.section} is not part of --part {args.part}")
    args.out = Path(args.out or (HERE / "quick" if args.quick else HERE)).resolve()
    return args

def check_options(args):
    """Everything a run needs, checked before its first epoch: seed, device, data, a writable --out."""
    if not 0 <= args.seed < 2 ** 32:
        raise UserError(f"--seed must lie in 0 to {2 ** 32 - 1}, found {args.seed}.")
    if torch is None and (args.part == "cnn" or (args.section or "2")[0] == "3"):
        raise UserError(f"{'--section ' + args.section if args.section else '--part cnn'} needs PyTorch, which is "
                        "not installed here (pip install torch); Part 1 (--part mlp) does not.")
    if args.device == "cuda" and (torch is None or not torch.cuda.is_available()):
        raise UserError("--device cuda was asked for, but torch finds no CUDA device on this machine.")
    uses_torch = torch is not None and args.part != "mlp" and (args.section or "3")[0] == "3"
    if args.device is None:  # asked only where Part 2 runs: torch 1.7 warns when it finds no driver
        args.device = "cuda" if uses_torch and torch.cuda.is_available() else "cpu"
    data = load_data(find_data_dir(args.data), ("test",) if args.part == "eval" else ("train", "val", "test"))
    if args.part == "eval":  # which writes nothing
        return data
    read_results(args.out)  # a damaged results.json is reported now, not after the training
    try:
        for sub in ("figures", "weights"):
            (args.out / sub).mkdir(parents=True, exist_ok=True)
            (args.out / sub / ".write-test").touch()
            (args.out / sub / ".write-test").unlink()
    except OSError as err:
        raise UserError(f"--out {args.out}: not a folder this run can write ({err.strerror or err}).") from None
    return data

def run(args):
    start, seconds, data = time.perf_counter(), {}, check_options(args)
    parts = {"all": "23", "mlp": "2", "cnn": "3"}[args.part] if torch is not None else "2"
    sections = [args.section.replace("3.2", "3.3")] if args.section else [s for s in SECTIONS if s[0] in parts]
    if args.quick:
        data.update({s: (x[:QUICK[f"{s}_n"]], y[:QUICK[f"{s}_n"]]) for s, (x, y) in data.items() if s != "test"})
    for section in sections:
        print(f"== {section} ==", flush=True)
        section_start = time.perf_counter()
        SECTIONS[section](data, args)
        seconds[section] = round(time.perf_counter() - section_start, 1)
    update_results(args.out, merge=True, seconds=seconds)
    results = read_results(args.out)
    part_2 = f", Part 2 on {args.device}" if any(s[0] == "3" for s in sections) else ""
    print(f"\nDone in {time.perf_counter() - start:.0f} s (seed {args.seed}{part_2}).")
    for key, name, base in NETWORKS:
        if "test_accuracy" in results.get(key, {}):
            acc = 100 * results[key]["test_accuracy"]
            credit = f", extra credit {max(acc - base, -20):+.2f}" if base else ""
            print(f"  {name:25} test accuracy {acc:.2f} % on {results[key]['test_n']} images{credit}")
    if torch is None:
        print("  Part 2 (sections 3.1-3.4) was skipped: it needs PyTorch, which is not installed here.")
    print(f"  Figures in {args.out / 'figures'}, weights in {args.out / 'weights'}, all numbers in "
          f"{args.out / 'figures' / 'results.json'}.")

def run_eval(args):
    """The saved networks on the test split of --data (or the default folder); prints JSON last."""
    x, y = check_options(args)["test"]
    weights = args.out / "weights"
    report = {"mlp": dict(accuracy=round(scores(mlp_log_probs(MLP.load(weights / "mlp.npz"), x), y)[0], 4), n=len(y))}
    if (weights / "cnn.npz").is_file() and torch is None:
        print(f"note: {weights / 'cnn.npz'} not evaluated: PyTorch is not installed.", file=sys.stderr)
    elif (weights / "cnn.npz").is_file() or (weights / "cnn.pt").is_file():  # an old .pt: load_cnn says what to do
        net = load_cnn(weights / "cnn.npz", args.device)
        report["cnn"] = dict(accuracy=round(scores(cnn_log_probs(net, x), y)[0], 4), n=len(y))
    print(json.dumps(report))

def main(argv=None):
    args = parse_args(argv)
    try:
        run_eval(args) if args.part == "eval" else run(args)
    except UserError as err:
        print(f"Project3.py: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Project3.py: interrupted; the files finished so far are kept, no half-written one.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
