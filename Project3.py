"""Project 3: MNIST digits with a multi-layer perceptron in numpy and a CNN in PyTorch.

Beside the data folder Project3_data, run `python Project3.py` for the whole assignment (2.3,
2.5-2.8, then 3.1-3.4), `--part mlp` for Part 1 alone (no torch needed), `--part cnn`,
`--section 2.7`, or `--quick` for all in seconds; in Spyder, Jupyter: `%run Project3.py --part mlp`.
Figures, weights and figures/results.json go beside this file (or under --out). Python 3.8-3.13,
numpy 1.19+, matplotlib 3.3+, torch 1.7+; argparse, json, pathlib and sys from the standard library.
"""

import argparse
import json
import sys
import time
from pathlib import Path

try:  # Ctrl-C during the imports ends the run as it does anywhere else
    try:
        import matplotlib
        import matplotlib.style
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure  # not pyplot: an IDE's own figures are left alone
    except (ImportError, ValueError) as error:  # missing, or an MPLBACKEND matplotlib refuses
        needed = "numpy and matplotlib are needed" if isinstance(error, ImportError) else ""
        problem = needed or "matplotlib refuses to start; if MPLBACKEND is set, unset it"
        print(f"Project3.py: error: {problem} ({str(error).split(';')[0]}).", file=sys.stderr)
        sys.exit(2)
    try:  # Part 2 only: Part 1 runs where torch is missing or broken
        import torch
        import torch.nn.functional as F

        torch.from_numpy(np.zeros(1))  # a torch built for another numpy fails here, not in 3.2
        TORCH_PROBLEM = None
    except Exception as error:  # not installed, a broken install, a missing library: no Part 2
        torch = F = None
        TORCH_PROBLEM = f"{type(error).__name__}: {error}"
except KeyboardInterrupt:
    print("Project3.py: interrupted.", file=sys.stderr)
    sys.exit(130)

TorchModule = object if torch is None else torch.nn.Module  # without torch: never instantiated
# The data and the outputs beside this file (for code run without a file: the working folder).
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()

# ==== 2.4-3.4 Settings: what the assignment specifies, and what validation chose. =================

SPEC = {  # 2.4 and 3.2, as the assignment gives them
    "batch": 256,  # images per gradient step
    "lr": 0.001,  # multiplies the gradient of the loss summed over the batch, in both parts
}
MLP_STUDY = {  # 2.5: the specified training on the first 2000 images, then on all of them
    "small_n": 2000,  # the assignment's "first 2000 images"
    "epochs_small": 735,  # 5880 steps: long enough to fit all 2000 training images
    "epochs_full": 60,  # twice the small run's steps, for the comparison
}
MLP_BEST = {  # 2.6: the same network trained better; each value chosen on the validation split
    "epochs": 90,  # the length of the cosine decay; fit keeps the best validation epoch
    "batch": 128,  # half the assignment's batch: twice the steps per epoch
    "lr": 3e-3,  # Adam's learning rate in the first epoch of the cosine decay (get_lr)
    "lr_final": 2e-5,  # ... decaying towards this
    "augment": {"rotate_deg": 8.0, "scale": 0.08, "shear": 0.10, "shift": 1.5},  # RandomAffine
    "deskew": True,  # every image the network reads sheared upright first (deskew)
}
CNN_STUDY = {  # 3.2-3.3: the specified training of the CNN
    "small_n": 2000,  # the first 2000 images, as in 2.5
    "epochs_small": 65,  # 520 steps: long enough to fit nearly all 2000 training images
    "epochs_full": 15,  # 2940 steps: long enough for validation accuracy to level off
}
CNN_BEST = {  # 3.4: the template CNN trained better; each value chosen on the validation split
    "epochs": 40,  # the length of the one-cycle schedule; fit keeps the best validation epoch
    "batch": 256,  # the assignment's batch
    "lr": 4e-3,  # the peak of Adam's one-cycle learning rate
    "augment": {"rotate_deg": 12.0, "scale": 0.10, "shear": 0.15, "shift": 2.5},  # beyond 2.6's
}
TRAIN_EVAL_N = 5000  # 2.6 and 3.4 score training accuracy on the first 5000 images, for speed
NETWORKS = (  # (results key, name, the accuracy above which each point is extra credit)
    ("mlp_spec", "MLP as specified (2.5)", None),
    ("mlp_best", "MLP trained better (2.6)", 90),
    ("cnn_spec", "CNN as specified (3.2)", None),
    ("cnn_best", "CNN trained better (3.4)", 98),
)
CREDIT_FLOOR = -20  # the assignment takes off a point per point below the base, down to 20 below


# ==== Files: one-sentence errors, whole files, output that never stops a run. ===================


class UserError(Exception):
    """Something the user can fix (data, weights, options, disk): one sentence, exit status 2."""


def print_safely(text):
    """print(), except that what the console cannot encode (a Windows code page) is escaped, and a
    closed or full stdout (`| head`, a full disk) silences the rest of the output, not the run."""
    try:
        if sys.stdout is not None:
            encoding = sys.stdout.encoding or "utf-8"
            print(text.encode(encoding, "backslashreplace").decode(encoding), flush=True)
    except OSError:  # BrokenPipeError, or no space left on the device
        sys.stdout = None


def write_whole(path, write, *args, **kwargs):
    """write(tmp, *args, **kwargs) into a temporary beside path, then rename it onto path: a reader
    sees the old file or the new one, never half of one."""
    tmp = path.with_suffix(".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp, *args, **kwargs)
        for _ in range(50):  # 5 s while Windows refuses: a viewer or a scanner may hold path open
            try:
                return tmp.replace(path)
            except PermissionError:
                time.sleep(0.1)
        tmp.replace(path)  # the last try: a PermissionError now is the message below
    except OSError as error:
        held = " (another program may hold it open)" if isinstance(error, PermissionError) else ""
        raise UserError(
            f"could not write {path} ({error.strerror or error}){held}; the file there, if any, "
            "was left as it was."
        ) from None
    finally:
        if tmp.exists():  # after a failure, or Ctrl-C
            tmp.unlink()


def save_figure(fig, out, name):
    """The figure as PDF (for the report, undated: a rerun writes the same file) and as PNG."""
    for ext in ("pdf", "png"):
        metadata = {"CreationDate": None} if ext == "pdf" else None
        path = out / "figures" / f"{name}.{ext}"
        write_whole(path, fig.savefig, format=ext, dpi=200, bbox_inches="tight", metadata=metadata)


def save_arrays(path, arrays):
    """An .npz of plain arrays (no pickle in it, so none is ever read), written whole."""

    def savez(tmp):
        with open(tmp, "wb") as file:  # a file, not a name: np.savez would add .npz to a name
            np.savez(file, **arrays)

    write_whole(path, savez)


def read_results(out, name="results.json"):
    """figures/results.json under out ({} if none): an object of objects, its numbers finite."""
    path = out / "figures" / name

    def no_constant(constant):
        raise ValueError(f"{constant} where a number belongs")

    try:
        results = json.loads(path.read_text(), parse_constant=no_constant) if path.exists() else {}
        if not isinstance(results, dict) or not all(isinstance(v, dict) for v in results.values()):
            raise ValueError("expected an object of objects")
        if not all(isinstance(v, (int, float)) for v in results.get("seconds", {}).values()):
            raise ValueError("expected seconds to map sections to numbers")
    except (OSError, ValueError) as error:
        problem = getattr(error, "strerror", None) or error
        raise UserError(
            f"{path} is not a readable results file ({problem}); restore it, or delete it to "
            "start afresh."
        ) from None
    return results


def write_results(out, results, name="results.json"):
    text = json.dumps(results, indent=1, sort_keys=True, allow_nan=False) + "\n"
    write_whole(out / "figures" / name, Path.write_text, text)


def saved_record(out, section, key, run_id=None):
    """results.json's record key, written by section; refused where that section did not finish,
    or where the weights read beside it (their run id given) were written by another run."""
    results = read_results(out)
    record = results.get(key)
    rerun = f"run `python Project3.py --section {section}` first (same --out and --quick)"
    if section in results.get("unfinished", {}):
        problem = f"section {section} did not finish, so its files in {out} may not match"
    elif record is None:
        problem = f"{out / 'figures' / 'results.json'} holds no record of section {section}"
    elif run_id is not None and run_id != record.get("run"):
        problem = f"the weights of section {section} in {out} are not those of its record"
    else:
        return record
    raise UserError(f"{problem}: {rerun}.")


# ==== Data: the three splits, checked and scaled alike before anything is trained. ===============


def find_data_dir(given=None):
    """--data, else Project3_data or Project3_Data beside this file, else in the working folder."""
    bases = dict.fromkeys((HERE, Path.cwd()))
    names = ("Project3_data", "Project3_Data")
    candidates = [Path.cwd() / given] if given else [b / n for b in bases for n in names]
    for folder in candidates:
        if folder.is_dir():
            return folder
    expected = " or ".join(map(str, candidates))
    raise UserError(f"no data folder: expected {expected} to be a folder (--data DIR names one).")


def read_npy(path, kinds, what):
    """One array saved with np.save, whose dtype.kind is one of kinds (u unsigned and i signed
    integers, f floating point), read without pickle; anything else is refused."""
    if not path.is_file():  # missing, a folder, or a FIFO or a device, which is never waited on
        found = (
            "not a regular file (a folder, FIFO or device)" if path.exists() else "file not found"
        )
        raise UserError(f"{path}: {found}; expected {what} saved by numpy.save.")
    try:
        with open(path, "rb") as file:
            magic = file.read(6)
            if magic != b"\x93NUMPY":  # an .npz is a zip archive: its first bytes are PK
                found = "an .npz archive" if magic[:2] == b"PK" else "another kind of file"
                raise UserError(f"{path}: expected {what} saved by numpy.save, found {found}.")
            file.seek(0)
            array = np.load(file, allow_pickle=False)
    except OSError as error:
        raise UserError(f"{path}: cannot be read ({error.strerror or error}).") from None
    except ValueError as error:  # objects (a pickle), a damaged header, the data cut short
        raise UserError(f"{path}: not a readable .npy array ({error}).") from None
    if array.dtype.kind not in kinds:
        raise UserError(f"{path}: expected {what}, found dtype {array.dtype}.")
    return array


def read_split(folder, split):
    """The images (N, 784) and labels (N,) of one split, as stored; malformed ones are refused."""
    where, label_path = (folder / f"MNIST_{split}_{kind}.npy" for kind in ("images", "labels"))
    images = read_npy(where, "uif", "integer or floating-point pixels")
    labels = read_npy(label_path, "ui", "integer labels")
    if images.ndim == 3 and images.shape[1:] == (28, 28):
        images = images.reshape(len(images), 784)
    problem = None
    if images.ndim != 2 or images.shape[1] != 784:
        problem = f"expected images of shape (N, 784) or (N, 28, 28), found {images.shape}"
    elif len(images) == 0:
        problem = f"the {split} split is empty (0 images)"
    elif not np.isfinite(images).all():
        problem = f"{np.count_nonzero(~np.isfinite(images))} pixels are NaN or infinite"
    elif labels.shape != (len(images),):
        where = label_path
        problem = f"expected {len(images)} labels, one per image, found shape {labels.shape}"
    elif labels.min() < 0 or labels.max() > 9:
        where = label_path
        problem = f"labels must lie in 0-9, found {labels.min()} to {labels.max()}"
    if problem:
        raise UserError(f"{where}: {problem}.")
    return images, labels.astype(np.int64)


def load_data(folder, splits=("train", "val", "test")):
    """{split: (images float32 (N, 784) in [0, 1], labels int64 (N,))}. The scale is decided once
    from the largest pixel M of all splits: M <= 1, in [0, 1] already; 128 <= M <= 255, grey levels
    divided by 255; anything else, negative pixels, or splits on different scales are refused."""
    raw = {split: read_split(folder, split) for split in splits}
    largest = {split: float(images.max()) for split, (images, _) in raw.items()}
    smallest = min(float(images.min()) for images, _ in raw.values())
    high = max(largest.values())
    if smallest < 0 or 1 < high < 128 or high > 255 or min(largest.values()) <= 1 < high:
        raise UserError(
            f"{folder}: pixels range from {smallest:.9g} to {high:.9g}, so their scale is in doubt "
            f"(largest per split: {largest}); expected all in [0, 1] or all grey levels 0-255 "
            "(largest at least 128)."
        )
    scale = 255 if high > 1 else 1
    return {split: (x.astype(np.float32) / scale, y) for split, (x, y) in raw.items()}


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
        self.seed = seed  # saved with the weights: 2.8 compares them with where they started
        self.run_id = ""  # the run that trains them, saved with them and in their record
        self.deskew = False  # whether it reads deskewed images (2.6), saved with the weights
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
        single = x.ndim == 1
        self.x = x.reshape(1, -1) if single else x
        self.a1 = self.x @ self.W1.T + self.b1  # a1 = W1 x + b1
        self.f1 = sigmoid(self.a1)  # f1 = sigma(a1)
        self.a2 = self.f1 @ self.W2.T + self.b2  # a2 = W2 f1 + b2
        self.y_hat = softmax(self.a2)  # y_hat = softmax(a2)
        return self.y_hat[0] if single else self.y_hat

    def jacobians(self, x):
        """2.3.1: the six Jacobians of the chain rule at one image x (784,), as matrices (rows:
        the output's entries, columns: the input's; a weight matrix counts row by row)."""
        self.forward(x)
        f1, x = self.f1[0], self.x[0]
        return {
            "da2/db2": np.eye(len(self.b2)),  # (10, 10)
            "da2/dW2": np.kron(np.eye(len(self.b2)), f1),  # (10, 640): da2_i/dW2_ij = f1_j
            "da2/df1": self.W2,  # (10, 64)
            "df1/da1": np.diag(f1 * (1 - f1)),  # (64, 64): sigma' = sigma (1 - sigma)
            "da1/dW1": np.kron(np.eye(len(self.b1)), x),  # (64, 50176): da1_i/dW1_ij = x_j
            "da1/db1": np.eye(len(self.b1)),  # (64, 64)
        }

    def reset_grad(self):
        """2.3.2: the gradients that update_grad adds to, set to zero."""
        self.W1_grad = np.zeros_like(self.W1)
        self.b1_grad = np.zeros_like(self.b1)
        self.W2_grad = np.zeros_like(self.W2)
        self.b2_grad = np.zeros_like(self.b2)

    def update_grad(self, y):
        """2.3.2: add dL/dtheta of the last forward pass's cross-entropy against the one-hot
        targets y (shaped like y_hat), summed over its images.

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
        about = {"seed": self.seed, "run": self.run_id, "deskew": int(self.deskew)}
        save_arrays(path, {**self.params(), **{k: np.array(v) for k, v in about.items()}})

    @classmethod
    def load(cls, path, section):
        """Weights written by save() in section, read without pickle; anything else is refused."""
        net = cls()
        try:
            with np.load(path, allow_pickle=False) as saved:
                for name, theta in net.params().items():
                    a = saved[name]
                    if a.shape != theta.shape or a.dtype.kind != "f" or not np.isfinite(a).all():
                        raise ValueError(f"{name} should be finite floats of shape {theta.shape}")
                    theta[...] = a  # in place, as float32
                net.seed, net.run_id = int(saved["seed"]), str(saved["run"])
                net.deskew = bool(saved["deskew"])
        except Exception as error:  # missing, a folder, not an .npz, an array missing, a pickle
            missing = isinstance(error, FileNotFoundError)
            problem = "file not found" if missing else f"no readable weights ({error})"
            raise UserError(
                f"{path}: {problem}; run `python Project3.py --section {section}` (same --out and "
                "--quick) to make them."
            ) from None
        return net


def section_2_3(data, args):
    """update_grad checked in double precision at new weights (2.2) on the first 8 validation
    images: against the six Jacobians of 2.3.1 chained image by image, and against central finite
    differences of the summed cross-entropy at 10 entries of each parameter. The numbers are the
    largest differences relative to the largest entry of each gradient."""
    n_images, n_entries, eps = 8, 10, 1e-6
    net = MLP(seed=args.seed)
    for name, theta in net.params().items():
        setattr(net, name, theta.astype(np.float64))
    x = data["val"][0][:n_images].astype(np.float64)
    Y = np.eye(10)[data["val"][1][:n_images]]  # one-hot targets
    net.reset_grad()
    net.forward(x)
    net.update_grad(Y)
    backprop = {name: getattr(net, f"{name}_grad") for name in net.params()}
    chained = {name: np.zeros_like(theta) for name, theta in net.params().items()}
    for x_i, Y_i in zip(x, Y):  # dL/dtheta = dL/da2 . da2/dtheta, dL/da2 . da2/df1 . df1/da1 ...
        J = net.jacobians(x_i)
        dL_da2 = net.y_hat[0] - Y_i
        dL_da1 = dL_da2 @ J["da2/df1"] @ J["df1/da1"]
        chained["b2"] += dL_da2 @ J["da2/db2"]
        chained["W2"] += (dL_da2 @ J["da2/dW2"]).reshape(net.W2.shape)
        chained["b1"] += dL_da1 @ J["da1/db1"]
        chained["W1"] += (dL_da1 @ J["da1/dW1"]).reshape(net.W1.shape)
    rng = np.random.default_rng(args.seed)
    chain, finite = [], []
    for name, theta in net.params().items():
        scale = np.abs(backprop[name]).max()
        chain.append(np.abs(chained[name] - backprop[name]).max() / scale)
        flat = theta.reshape(-1)  # a view: an entry changed here changes the network
        for i in rng.choice(flat.size, size=n_entries, replace=False):
            losses = []
            for shifted in (flat[i] + eps, flat[i] - eps, flat[i]):  # the last restores it
                flat[i] = shifted
                net.forward(x)
                losses.append(-np.sum(Y * log_softmax(net.a2)))
            numeric = (losses[0] - losses[1]) / (2 * eps)
            finite.append(abs(numeric - backprop[name].reshape(-1)[i]) / scale)
    chain, finite = float(max(chain)), float(max(finite))
    print_safely(
        f"  update_grad against the chained Jacobians: {chain:.1e}, against finite "
        f"differences: {finite:.1e} (largest differences, relative)"
    )
    record = {"images": len(x), "entries_per_parameter": n_entries, "chain_vs_backprop": chain}
    return {"gradient_check": {**record, "finite_vs_backprop": finite}}


# ==== 2.4 Training: mini-batch SGD, the four calls in order; scores after every epoch. ==========
# (train_mlp also takes 2.6's additions: a decaying learning rate, distortions, the best epoch.)


def batches(n, batch, rng):
    """One epoch's mini-batches: a fresh random order of the n images, cut into pieces."""
    order = rng.permutation(n)
    return [order[start : start + batch] for start in range(0, n, batch)]


def train_epoch(net, x, Y, *, batch, lr, rng, augment=None):
    """One pass over the images x (one-hot targets Y) in random mini-batches; returns the steps.
    augment (2.6), if given, distorts each batch first: augment(images, rng)."""
    minibatches = batches(len(x), batch, rng)
    for idx in minibatches:
        x_batch = x.take(idx, axis=0)
        if augment is not None:
            x_batch = augment(x_batch, rng)
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


def get_lr(epoch, epochs, *, lr, lr_final=None):
    """The learning rate of an epoch (1 to epochs): constant (2.4), or with lr_final the cosine
    decay of 2.6 from lr in the first epoch towards lr_final (Loshchilov and Hutter, 2017)."""
    if lr_final is None:
        return lr
    progress = (epoch - 1) / epochs
    return lr_final + (lr - lr_final) * (1 + np.cos(np.pi * progress)) / 2


def fit(net, data, run_epoch, log_probs, weights, *, epochs, tag, train_eval_n=None):
    """The epochs of a training, the MLP's or the CNN's: run_epoch(epoch) trains net and returns
    its steps; log_probs(net, images) then scores the training images (or the first train_eval_n)
    and the validation images. Returns the history and the best validation epoch's weights()."""
    x, y = data["train"]
    history = {key: [] for key in ("step", "train_acc", "train_loss", "val_acc", "val_loss")}
    best = {"val_acc": -1}
    start = time.perf_counter()
    steps = 0
    for epoch in range(1, epochs + 1):
        steps += run_epoch(epoch)
        train = accuracy_and_loss(log_probs(net, x[:train_eval_n]), y[:train_eval_n])
        val = accuracy_and_loss(log_probs(net, data["val"][0]), data["val"][1])
        for key, value in zip(history, (steps, *train, *val)):
            history[key].append(round(value, 5))
        if history["val_acc"][-1] > best["val_acc"]:
            best = {"val_acc": history["val_acc"][-1], "weights": weights()}
        if epoch in (1, epochs) or epoch % max(1, epochs // 50) == 0:  # about 50 lines in all
            elapsed = time.perf_counter() - start
            remaining = elapsed / epoch * (epochs - epoch)
            print_safely(
                f"[{tag}] epoch {epoch}/{epochs}  train {100 * train[0]:.2f}%  val "
                f"{100 * val[0]:.2f}%  {elapsed:.1f}s, ETA {remaining:.0f}s"
            )
    return history, best


def train_mlp(net, data, *, epochs, batch, lr, seed, tag, lr_final=None, augment=None, **scoring):
    """Train net in place on data["train"] with train_epoch at get_lr's rate, scored by fit (its
    train_eval_n in scoring); returns fit's history and best epoch."""
    x, Y = data["train"][0], np.eye(10, dtype=np.float32)[data["train"][1]]  # one-hot targets
    rng = np.random.default_rng(seed)

    def run_epoch(epoch):
        lr_now = get_lr(epoch, epochs, lr=lr, lr_final=lr_final)
        return train_epoch(net, x, Y, batch=batch, lr=lr_now, rng=rng, augment=augment)

    def weights():
        return {name: theta.copy() for name, theta in net.params().items()}

    return fit(net, data, run_epoch, mlp_log_probs, weights, epochs=epochs, tag=tag, **scoring)


def training_record(history, start, args, **more):
    """What results.json keeps of a training of this run; val_accuracy is that of the weights that
    were kept: the last epoch's unless more says else."""
    seconds = round(time.perf_counter() - start, 1)
    about = {"seed": args.seed, "run": args.run_id, "train_seconds": seconds}
    return {"val_accuracy": history["val_acc"][-1], "history": history, **about, **more}


def test_scores(log_probs, test):
    """The test accuracy of a network whose training is over: the test split never enters
    train_mlp or train_cnn, so it chooses nothing."""
    return {"test_accuracy": accuracy_and_loss(log_probs, test[1])[0], "test_n": len(test[1])}


# ==== 2.5 Over-fitting? The specified training on the first 2000 images, then on all 50000. ======


FIGURE_STYLE = {  # set while a run draws, then restored: an IDE session keeps its own settings
    "font.size": 8,  # 8 pt as printed in the report
    "axes.titlesize": 8,
    "legend.fontsize": 8,
    "axes.formatter.min_exponent": 4,  # log axes read 0.05, 0.1, 0.2 rather than 5x10^-2
}


def new_figure(**kwargs):
    """A figure drawn straight to files (Agg), outside pyplot and any window."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def plot_curves(runs, *, title, out, name):
    """Accuracy and loss after every epoch (a dot each) against gradient steps, a row per run; the
    loss axes shared, so that the runs compare by eye, the accuracy axes from the row's lowest."""
    fig = new_figure(figsize=(6.3, 0.45 + 1.6 * len(runs)))
    axes = fig.subplots(len(runs), 2, sharex="row", squeeze=False)
    losses = [h[f"{split}_loss"] for _, h in runs for split in ("train", "val")]
    loss_range = (0.8 * min(map(min, losses)), 1.25 * max(map(max, losses)))
    for (label, history), row in zip(runs, axes):
        for ax, what, scale in zip(row, ("acc", "loss"), (100, 1)):
            for split, legend in (("train", "training images"), ("val", "validation images")):
                y = scale * np.array(history[f"{split}_{what}"])
                ax.plot(history["step"], y, marker=".", markersize=3, label=legend)
            ax.grid(alpha=0.3)
        later = 100 * np.array(history["train_acc"][1:] + history["val_acc"][1:] or [0])
        low = max(np.floor(later.min()) - 1, 0)
        row[0].set(title=f"{label}: accuracy", ylabel="accuracy (%)", ylim=(low, 100.3))
        row[1].set(title=f"{label}: loss", ylabel="cross-entropy per image", yscale="log")
        row[1].set_ylim(loss_range)
    for ax in axes.flat:
        ax.set_xlabel("gradient steps")
    axes[0, 0].legend(loc="lower right")
    fig.suptitle(title, fontsize=8.5)
    fig.tight_layout()
    save_figure(fig, out, name)


def section_2_5(data, args):
    """The specified training (2.4) on the first 2000 images, then on all 50000, from the same
    initial weights, each scored on all the images it trains on and on the validation split. (A
    training split under 6000 images, as with --quick, gives the small run a third of them.)"""
    cfg = args.config["mlp_study"]
    x, y = data["train"]
    results = {}
    runs = []
    for key, n, epochs in (
        ("mlp_spec_2000", min(cfg["small_n"], len(x) // 3), cfg["epochs_small"]),
        ("mlp_spec", len(x), cfg["epochs_full"]),
    ):
        start = time.perf_counter()
        net = MLP(seed=args.seed)
        subset = {"train": (x[:n], y[:n]), "val": data["val"]}
        history, _ = train_mlp(  # with the specified batch and learning rate
            net, subset, epochs=epochs, seed=args.seed, tag=f"2.5, {n} images", **SPEC
        )
        results[key] = training_record(history, start, args, train_n=n)
        which = "first" if n < len(x) else "all"
        runs.append((f"{which} {n} images, {epochs} epochs", history))
        if key == "mlp_spec":  # the network trained on all the images is the one kept
            net.run_id = args.run_id
            net.save(args.out / "weights" / "mlp_spec.npz")
            results[key].update(test_scores(mlp_log_probs(net, data["test"][0]), data["test"]))
    title = f"MLP: SGD, learning rate {SPEC['lr']} on the summed loss, batch {SPEC['batch']}"
    plot_curves(runs, title=title, out=args.out, name="mlp_study")
    return results


# ==== 2.6 How well does it work? The same network, trained better. ===============================


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


PIXEL_Y, PIXEL_X = np.mgrid[:28, :28].reshape(2, 784) - 13.5  # each pixel about the image centre
PIXEL_GRID = np.stack([PIXEL_X, PIXEL_Y, np.ones(784)]).astype(np.float32)  # x, y and 1 (the shift)


def sample_bilinear(images, src):
    """The images (B, 784) read at the points src (B, 2, 784), x and y in pixels about the centre:
    each output pixel blends the four input pixels around its point with bilinear weights. Points
    outside are clipped to a border of zeros (0.1 % of an edge pixel leaks in: blank on MNIST)."""
    B = len(images)
    src = np.clip(src + 14.5, 0, 28.999)  # +1: the image padded by a pixel of zeros, 30 x 30
    corner = np.floor(src)
    wx, wy = src[:, 0] - corner[:, 0], src[:, 1] - corner[:, 1]  # the bilinear weights
    i = (30 * corner[:, 1] + corner[:, 0]).astype(np.intp)  # the top-left neighbours ...
    i += 900 * np.arange(B)[:, None]  # ... in the padded images laid one after another
    padded = np.pad(images.reshape(B, 28, 28), ((0, 0), (1, 1), (1, 1))).ravel()
    top_left, top_right, bottom_left, bottom_right = (padded[d:].take(i) for d in (0, 1, 30, 31))
    top = top_left + wx * (top_right - top_left)
    bottom = bottom_left + wx * (bottom_right - bottom_left)
    return top + wy * (bottom - top)


def deskew(images, chunk=10000):
    """Each image sheared along x so that its principal axis stands upright, the shear taken from
    the second moments of its ink (LeCun et al., 1998, deskew MNIST so): float32 (N, 784)."""
    out = []
    for start in range(0, len(images), chunk):
        x = np.asarray(images[start : start + chunk], dtype=np.float32)
        mass = x.sum(axis=1, keepdims=True) + 1e-6  # a blank image stays blank
        dx = PIXEL_X - x @ PIXEL_X[:, None] / mass  # each pixel about the image's centre of ink
        dy = PIXEL_Y - x @ PIXEL_Y[:, None] / mass
        slant = (x * dx * dy).sum(axis=1) / ((x * dy * dy).sum(axis=1) + 1e-6)  # cov(x,y)/var(y)
        src = np.stack([PIXEL_X + slant[:, None] * dy, np.broadcast_to(PIXEL_Y, x.shape)], 1)
        out.append(sample_bilinear(x, src.astype(np.float32)))
    return np.concatenate(out) if out else np.zeros((0, 784), np.float32)


class RandomAffine:
    """Random affine distortions of 28x28 images, drawn afresh for every image and every call:
    rotation by up to rotate_deg degrees, scaling by 1 +- scale, horizontal shear by up to +-shear
    and a shift by up to +-shift pixels. Called as augment(images (B, 784), rng)."""

    def __init__(self, rotate_deg, scale, shear, shift):
        self.rotate_deg, self.scale, self.shear, self.shift = rotate_deg, scale, shear, shift

    def maps(self, B, rng):
        """B affine maps (B, 2, 3), float32, in pixels about the image centre: output pixel p
        reads the input at A^-1 (p - t), for A the rotation, scaling and shear, t the shift."""
        angle = np.deg2rad(rng.uniform(-self.rotate_deg, self.rotate_deg, B))
        s = 1 + rng.uniform(-self.scale, self.scale, B)
        k = rng.uniform(-self.shear, self.shear, B)
        t = rng.uniform(-self.shift, self.shift, (B, 2, 1))
        cos, sin = np.cos(angle), np.sin(angle)
        rotate_shear = np.array([[cos, cos * k - sin], [sin, sin * k + cos]])  # R [[1, k], [0, 1]]
        A = (s * rotate_shear).transpose(2, 0, 1)  # (B, 2, 2), R = [[cos, -sin], [sin, cos]]
        A_inv = np.linalg.inv(A)
        return np.concatenate([A_inv, -A_inv @ t], axis=2).astype(np.float32)

    def __call__(self, images, rng):
        """The batch (B, 784) distorted, each image by its own draw."""
        B = len(images)
        src = (self.maps(B, rng).reshape(2 * B, 3) @ PIXEL_GRID).reshape(B, 2, 784)
        return sample_bilinear(images, src)


def plot_deskewed(x, *, out):
    """The first ten validation digits as given (top) and deskewed (bottom)."""
    fig = new_figure(figsize=(4.2, 1.0))
    axes = fig.subplots(2, 10, subplot_kw={"xticks": [], "yticks": []})
    for row, images in zip(axes, (x[:10], deskew(x[:10]))):
        for ax, image in zip(row, images):
            ax.imshow(image.reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
    axes[0, 0].set_ylabel("given", rotation=0, ha="right", va="center", fontsize=7)
    axes[1, 0].set_ylabel("deskewed", rotation=0, ha="right", va="center", fontsize=7)
    save_figure(fig, out, "deskew")


def section_2_6(data, args):
    """The 2.6 recipe on all 50000 images; the best validation epoch's weights are kept."""
    cfg = args.config["mlp_best"]
    start = time.perf_counter()
    net = AdamMLP(seed=args.seed)
    recipe = {**cfg, "augment": RandomAffine(**cfg["augment"])}  # epochs, batch, lr, lr_final
    net.deskew = recipe.pop("deskew")
    if net.deskew:  # every split, as the network reads it
        plot_deskewed(data["val"][0], out=args.out)
        data = {split: (deskew(x), y) for split, (x, y) in data.items()}
    history, best = train_mlp(
        net, data, **recipe, seed=args.seed, tag="2.6", train_eval_n=TRAIN_EVAL_N
    )
    record = training_record(history, start, args, val_accuracy=best["val_acc"], config=cfg)
    for name, theta in net.params().items():
        theta[...] = best["weights"][name]  # the weights of the best epoch on validation
    net.run_id = args.run_id
    net.save(args.out / "weights" / "mlp.npz")
    record.update(test_scores(mlp_log_probs(net, data["test"][0]), data["test"]))
    return {"mlp_best": record}


# ==== 2.7 Where does it make mistakes? (The CNN of 3.4 too.) =====================================


def plot_confusion(C, *, out, name, title):
    fig = new_figure(figsize=(3.3, 3.15))
    ax = fig.subplots()
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
    fig = new_figure(figsize=(3.2, 3.4))
    axes = fig.subplots(6, 6, subplot_kw=no_ticks)
    for row, (count, i, j) in zip(axes, pairs):
        for ax, k in zip(row, np.flatnonzero((y == i) & (predicted == j))):
            ax.imshow(x[k].reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
        row[0].set_ylabel(f"{i}$\\to${j} ({count})", rotation=0, ha="right", va="center")
    fig.suptitle(f"{title}: mistakes, true$\\to$predicted (count)", fontsize=8)
    save_figure(fig, out, name)


def confusion_section(key, predicted, test, *, out, title, run_id):
    """The 10x10 confusion matrix on the test split, and the test images behind its largest
    off-diagonal counts; returns the matrix and what the report quotes of it, with the run id of
    the network (run_id)."""
    C = np.zeros((10, 10), dtype=np.int64)  # C[i, j]: the images of digit i predicted as j
    np.add.at(C, (test[1], predicted), 1)
    mistakes = [(int(C[i, j]), i, j) for i in range(10) for j in range(10) if i != j and C[i, j]]
    pairs = sorted(mistakes, key=lambda mistake: -mistake[0])  # stable: ties stay in digit order
    plot_confusion(C, out=out, name=f"{key}_confusion", title=title)
    plot_mistakes(
        pairs[:6], test=test, predicted=predicted, out=out, name=f"{key}_mistakes", title=title
    )
    per_class = np.diag(C) / np.maximum(C.sum(axis=1), 1)
    top = [{"true": i, "predicted": j, "count": count} for count, i, j in pairs[:8]]
    scores = {"matrix": C.tolist(), "per_class_accuracy": per_class.round(4).tolist()}
    return {f"{key}_confusion": {"run": run_id, **scores, "top_confusions": top}}


def section_2_7(data, args):
    """The confusion matrix of the 2.6 network (weights/mlp.npz) on the test split."""
    net = MLP.load(args.out / "weights" / "mlp.npz", "2.6")
    saved_record(args.out, "2.6", "mlp_best", net.run_id)
    x = deskew(data["test"][0]) if net.deskew else data["test"][0]  # as the network reads them
    predicted = mlp_log_probs(net, x).argmax(axis=1)
    return confusion_section(
        "mlp", predicted, data["test"], out=args.out, title="MLP of 2.6", run_id=net.run_id
    )


# ==== 2.8 The rows of W1 as 28x28 templates, as specified (2.5) and trained better (2.6). ========


def rms(w):
    """The root-mean-square of the weights w; None (null in results.json) if there are none."""
    return float(np.sqrt(np.mean(w**2))) if w.size else None


def section_2_8(data, args):
    """The 64 rows of W1 of both networks as an 8x8 grid of 28x28 tiles, each tile on its own
    symmetric colour scale; and the size of the weights on pixels that no training image inks,
    against the others, and against where each network's training started."""
    weights = args.out / "weights"
    nets = {
        "mlp_spec": MLP.load(weights / "mlp_spec.npz", "2.5"),
        "mlp_best": MLP.load(weights / "mlp.npz", "2.6"),
    }
    for (key, net), section in zip(nets.items(), ("2.5", "2.6")):
        saved_record(args.out, section, key, net.run_id)  # the weights and the record of one run
    fig = new_figure(figsize=(6.3, 3.3))
    panels = fig.subplots(1, 2)
    names = ("as specified (2.5)", "trained better (2.6)")
    for ax, net, name in zip(panels, nets.values(), names):
        tiles = net.W1 / np.abs(net.W1).max(axis=1, keepdims=True)  # each row on its own scale
        tiles = tiles.reshape(8, 8, 28, 28)
        tiles = np.pad(tiles, ((0, 0), (0, 0), (0, 1), (0, 1)), constant_values=np.nan)  # gaps
        mosaic = tiles.transpose(0, 2, 1, 3).reshape(8 * 29, 8 * 29)  # 8 rows of 8 tiles
        ax.imshow(mosaic, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_axis_off()
        ax.set_title(f"the 64 rows of $W_1$, {name}")
    save_figure(fig, args.out, "mlp_templates")
    record = {}
    for key, net in nets.items():
        x = deskew(data["train"][0]) if net.deskew else data["train"][0]
        blank = x.max(axis=0) == 0  # pixels that are 0 in every training image the network reads
        initial = MLP(seed=net.seed).W1  # where its training started (2.2)
        record[key] = {
            "run": net.run_id,
            "blank_pixels": int(blank.sum()),
            "rms_blank": rms(net.W1[:, blank]),
            "rms_inked": rms(net.W1[:, ~blank]),
            "rms_change_inked": rms(net.W1[:, ~blank] - initial[:, ~blank]),  # what training added
        }
    return {"mlp_templates": record}


# ==== 3.1 The template CNN. =====================================================================


class ConvNet(TorchModule):
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


def section_3_1(data, args):
    """forward() on a blank image, each layer's call recorded by a forward hook in forward()'s
    order: its settings, shapes and parameters (the ReLUs and the flattening are functions)."""
    net = ConvNet()
    rows = []

    def record(name, layer, inputs, output):
        row = {"layer": name, "type": type(layer).__name__, "input": list(inputs[0].shape[1:])}
        row.update(output=list(output.shape[1:]), params=sum(p.numel() for p in layer.parameters()))
        geometry = ""  # e.g. "kernel 5 stride 1 padding 0"
        for setting in ("kernel_size", "stride", "padding"):
            value = getattr(layer, setting, None)
            if value is not None:
                row[setting] = value if isinstance(value, int) else value[0]  # square here
                geometry += f"{setting.split('_')[0]} {row[setting]} "
        rows.append(row)
        print_safely(
            f"  {name:6}{row['type']:10}{geometry:28}{str(row['input']):>12} -> "
            f"{str(row['output']):12}{row['params']:6}"
        )

    for name, layer in net.named_children():
        layer.register_forward_hook(lambda *call, name=name: record(name, *call))
    net(torch.zeros(1, 784))
    total = sum(p.numel() for p in net.parameters())
    print_safely(f"  {total} parameters in all (the ReLUs and the flattening have none)")
    return {"cnn_architecture": {"layers": rows, "total_params": total}}


# ==== 3.2 Training the CNN: the tutorial's loop, fed straight from the numpy arrays. ============


def train_cnn_epoch(net, x, y, *, batch, optimizer, loss_fn, rng, scheduler=None, augment=None):
    """One pass over the images x and labels y (tensors on the network's device) in random
    mini-batches, with the training step of the PyTorch tutorial "Training a classifier"; augment
    and scheduler are 3.4's additions. Returns the steps."""
    minibatches = batches(len(x), batch, rng)
    for idx in minibatches:
        idx = torch.from_numpy(idx).long().to(x.device)  # int64 also where numpy gives int32
        inputs = x[idx]
        labels = y[idx]
        if augment is not None:  # 3.4
            inputs = augment(inputs, rng)
        optimizer.zero_grad()
        loss = loss_fn(net(inputs), labels)
        loss.backward()
        optimizer.step()
        if scheduler is not None:  # 3.4
            scheduler.step()
    return len(minibatches)


def cnn_log_probs(net, x, chunk=500):
    """log softmax of the class scores of every image; small chunks keep each layer in cache."""
    device = next(net.parameters()).device
    net.eval()
    with torch.no_grad():
        chunks = [torch.from_numpy(x[i : i + chunk]).to(device) for i in range(0, len(x), chunk)]
        log_probs = [F.log_softmax(net(images), 1).cpu() for images in chunks]
    net.train()
    return torch.cat(log_probs).numpy()


def train_cnn(net, data, *, epochs, seed, tag, train_eval_n=None, **step_settings):
    """train_mlp's counterpart: train_cnn_epoch (step_settings: batch, optimizer, loss_fn and 3.4's
    scheduler and augment) on the whole training split held as tensors, scored by fit."""
    device = next(net.parameters()).device
    x, y = (torch.from_numpy(array).to(device) for array in data["train"])
    rng = np.random.default_rng(seed)

    def run_epoch(epoch):
        return train_cnn_epoch(net, x, y, rng=rng, **step_settings)

    def weights():
        return {name: tensor.clone() for name, tensor in net.state_dict().items()}

    scoring = {"epochs": epochs, "tag": tag, "train_eval_n": train_eval_n}
    return fit(net, data, run_epoch, cnn_log_probs, weights, **scoring)


def train_cnn_as_specified(data, *, epochs, seed, device, tag):
    """3.2: plain SGD at learning rate 0.001 on the cross-entropy summed over batches of 256, as
    the MLP of 2.4 (the tutorial adds momentum 0.9 and averages the loss over the batch)."""
    torch.manual_seed(seed)  # the initial weights
    net = ConvNet().to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=SPEC["lr"])
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")
    recipe = {"batch": SPEC["batch"], "optimizer": optimizer, "loss_fn": loss_fn}
    history, _ = train_cnn(net, data, epochs=epochs, seed=seed, tag=tag, **recipe)
    return net, history


def save_cnn(net, path, run_id):
    """The CNN's state dict as plain arrays, and the run that trained it."""
    arrays = {k: t.cpu().numpy() for k, t in net.state_dict().items()}
    save_arrays(path, {"run": np.array(run_id), **arrays})


def section_3_2(data, args):
    """The specified training on all 50000 images."""
    n = len(data["train"][0])
    epochs = args.config["cnn_study"]["epochs_full"]
    start = time.perf_counter()
    net, history = train_cnn_as_specified(
        data, epochs=epochs, seed=args.seed, device=args.device, tag=f"3.2, {n} images"
    )
    record = training_record(history, start, args, train_n=n)
    save_cnn(net, args.out / "weights" / "cnn_spec.npz", args.run_id)
    record.update(test_scores(cnn_log_probs(net, data["test"][0]), data["test"]))
    return {"cnn_spec": record}


# ==== 3.3 Over-fitting? 3.2's training on the first 2000 images, beside 3.2's on all 50000. =======


def section_3_3(data, args):
    """The training of 3.2 on the first 2000 images, scored as in 2.5 on the images it trains on and
    the validation split, plotted above 3.2's run on all 50000."""
    cfg = args.config["cnn_study"]
    full = saved_record(args.out, "3.2", "cnn_spec")  # 3.2's run, checked before training
    if full.get("seed") != args.seed:
        raise UserError(
            f"section 3.3 plots its run beside 3.2's, which ran with --seed {full.get('seed')}, "
            f"not {args.seed}: pass --seed {full.get('seed')}, or rerun section 3.2."
        )
    x, y = data["train"]
    n = min(cfg["small_n"], len(x) // 3)  # as in 2.5
    subset = {"train": (x[:n], y[:n]), "val": data["val"]}
    start = time.perf_counter()
    tag = f"3.3, {n} images"
    _, history = train_cnn_as_specified(
        subset, epochs=cfg["epochs_small"], seed=args.seed, device=args.device, tag=tag
    )
    runs = [
        (f"first {n} images, {cfg['epochs_small']} epochs", history),
        (f"all {full['train_n']} images, {len(full['history']['step'])} epochs", full["history"]),
    ]
    title = f"CNN: SGD, learning rate {SPEC['lr']} on the summed loss, batch {SPEC['batch']}"
    plot_curves(runs, title=title, out=args.out, name="cnn_study")
    return {"cnn_spec_2000": training_record(history, start, args, train_n=n)}


# ==== 3.4 How well does it work? The template CNN, trained better. ===============================


class RandomAffineTorch(RandomAffine):
    """RandomAffine's distortions applied by torch on the images' device: the maps drawn the same
    way, the shifts rescaled to affine_grid's units (the image spans -1 to 1: 14 pixels a unit)."""

    def __call__(self, images, rng):
        theta = torch.from_numpy(self.maps(len(images), rng)).to(images.device)
        theta[:, :, 2] /= 14
        grid = F.affine_grid(theta, [len(images), 1, 28, 28], align_corners=False)
        distorted = F.grid_sample(images.reshape(-1, 1, 28, 28), grid, align_corners=False)
        return distorted.reshape(-1, 784)


def cnn_best_recipe(cfg, net, n_train):
    """The 3.4 recipe's training step for net: Adam with a one-cycle learning rate (Smith and
    Topin, 2019), random affine distortions."""
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    steps_per_epoch = (n_train + cfg["batch"] - 1) // cfg["batch"]  # the last batch: smaller
    # Stepped every batch with torch's defaults: the rate rises from max_lr / 25 for 30 % of the
    # steps, then falls along a cosine to max_lr / 25 / 10^4; Adam's beta1 goes 0.95, 0.85, 0.95.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg["lr"], total_steps=cfg["epochs"] * steps_per_epoch
    )
    return {
        "batch": cfg["batch"],
        "optimizer": optimizer,
        "loss_fn": torch.nn.CrossEntropyLoss(),
        "scheduler": scheduler,
        "augment": RandomAffineTorch(**cfg["augment"]) if cfg["augment"] else None,
    }


def section_3_4(data, args):
    """The 3.4 recipe on all 50000 images, keeping the best validation epoch's weights; then their
    test accuracy and confusion matrix."""
    cfg = args.config["cnn_best"]
    start = time.perf_counter()
    torch.manual_seed(args.seed)  # the initial weights
    net = ConvNet().to(args.device)
    recipe = cnn_best_recipe(cfg, net, len(data["train"][0]))
    scoring = {"epochs": cfg["epochs"], "tag": "3.4", "train_eval_n": TRAIN_EVAL_N}
    history, best = train_cnn(net, data, seed=args.seed, **scoring, **recipe)
    net.load_state_dict(best["weights"])  # the weights of the best epoch on validation
    record = training_record(
        history, start, args, val_accuracy=best["val_acc"], config=cfg, device=args.device
    )
    save_cnn(net, args.out / "weights" / "cnn.npz", args.run_id)
    test_log_probs = cnn_log_probs(net, data["test"][0])
    record.update(test_scores(test_log_probs, data["test"]))
    predicted = test_log_probs.argmax(axis=1)
    confusion = confusion_section(
        "cnn", predicted, data["test"], out=args.out, title="CNN of 3.4", run_id=args.run_id
    )
    return {"cnn_best": record, **confusion}


# ==== The command line: the grader's run, a part or a section. ===================================

QUICK = {  # --quick: every code path in seconds, into quick/
    "train_n": 600,  # training images (the small studies take a third of them)
    "val_n": 300,  # validation images (the test split is read whole)
    "epochs": 2,  # for every training
}


def settings(quick):
    """The trainings' settings as above; for --quick, QUICK's epochs (the small studies then take
    a third of its images)."""
    configs = {"mlp_study": MLP_STUDY, "mlp_best": MLP_BEST, "cnn_study": CNN_STUDY}
    configs["cnn_best"] = CNN_BEST
    if quick:
        epochs = QUICK["epochs"]
        short = {"small_n": QUICK["train_n"] // 3, "epochs_small": epochs, "epochs_full": epochs}
        for key, cfg in configs.items():
            configs[key] = {**cfg, **short} if "small_n" in cfg else {**cfg, "epochs": epochs}
    return configs


# {"2.3": section_2_3, ...}: every section_ function above, in the report's order
SECTIONS = {k[8:].replace("_", "."): f for k, f in globals().items() if k.startswith("section_")}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Project 3: an MLP in numpy, a CNN in PyTorch.")
    parser.add_argument("--part", choices=["all", "mlp", "cnn"], default="all", help="default: all")
    parser.add_argument("--section", choices=list(SECTIONS), help="one section of the report")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--data", help="data folder (default: Project3_data beside this file)")
    parser.add_argument("--out", help="where figures/ and weights/ go (default: beside this file)")
    parser.add_argument("--quick", action="store_true", help="a few hundred images, 2 epochs")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="Part 2's (default: CUDA if any)")
    args = parser.parse_args(argv)
    parts = {"all": "23" if torch else "2", "mlp": "2", "cnn": "3"}[args.part]  # no torch: Part 1
    if args.section and args.part != "all" and args.section[0] not in parts:
        parser.error(f"--section {args.section} is not part of --part {args.part}")
    if args.out == "" or args.data == "":
        parser.error("--out and --data need a folder; an empty one was given")
    default_out = HERE / "quick" if args.quick else HERE
    args.out = Path.cwd() / args.out if args.out else default_out  # absolute, even if not made yet
    args.sections = [args.section] if args.section else [s for s in SECTIONS if s[0] in parts]
    return args


def pick_device(requested):
    """Part 2's device: --device, else CUDA where torch finds it."""
    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise UserError("--device cuda was asked for, but torch finds no CUDA device here.")
    return requested or ("cuda" if has_cuda else "cpu")


def check_before_training(args):
    """The seed, torch, the device, the data and --out, checked before the first epoch; sets
    args.device, args.config and args.run_id (written into its files). Returns the data."""
    if not 0 <= args.seed < 2**32:
        raise UserError(f"--seed must lie in 0 to {2**32 - 1}, found {args.seed}.")
    runs_part_2 = any(section[0] == "3" for section in args.sections)
    if runs_part_2 and torch is None:
        raise UserError(f"Part 2 needs PyTorch, which cannot be imported here ({TORCH_PROBLEM}).")
    if runs_part_2:
        args.device = pick_device(args.device)
    data = load_data(find_data_dir(args.data))
    if len(data["train"][0]) < 3:
        raise UserError(
            f"the training split holds {len(data['train'][0])} images; 2.5 and 3.3 need at least 3."
        )
    try:
        for folder in ("figures", "weights"):
            (args.out / folder).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"--out {args.out}: not a folder this run can write ({error}).") from None
    args.config = settings(args.quick)
    args.run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}"
    for split in ("train", "val") if args.quick else ():
        data[split] = tuple(array[: QUICK[f"{split}_n"]] for array in data[split])
    return data


def run(args):
    """The sections asked for, alone in args.out (a lock file keeps out any other run); each is
    marked unfinished in results.json until its records replace the mark (run_sections)."""
    start = time.perf_counter()
    skipped = f"Part 2 (3.1-3.4) is skipped: it needs PyTorch ({TORCH_PROBLEM})."
    skipping = torch is None and args.part == "all" and not args.section
    if skipping:
        print_safely(skipped)
    data = check_before_training(args)
    lock = args.out / "figures" / ".run.lock"
    try:
        lock.open("x").close()
    except FileExistsError:
        raise UserError(
            f"another run is writing into {args.out} ({lock} exists): wait until it ends, or "
            "delete that file if no run is going on (a run killed outright leaves it behind)."
        ) from None
    except OSError as error:
        raise UserError(f"--out {args.out}: not a folder this run can write ({error}).") from None
    try:
        records = run_sections(data, args)
    finally:
        lock.unlink(missing_ok=True)  # (deleted by hand meanwhile: nothing to do)
    print_safely(f"\nDone in {time.perf_counter() - start:.0f} s (seed {args.seed}).")
    for key, name, base in NETWORKS:
        if key in records:
            accuracy = 100 * records[key]["test_accuracy"]
            credit = f", extra credit {max(accuracy - base, CREDIT_FLOOR):+.2f}" if base else ""
            print_safely(f"  {name:25} test accuracy {accuracy:.2f} %{credit}")
    print_safely(f"  Figures, weights and results.json in {args.out}.")
    if skipping:
        print_safely("  " + skipped)


def run_sections(data, args):
    """run's sections, results.json written before and after each; returns this run's records."""
    results = read_results(args.out)  # a damaged results.json is refused before any training
    results["versions"] = {  # of the latest run: the seconds and the last digits depend on them
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "torch": getattr(torch, "__version__", None),
    }
    records = {}
    for done, section in enumerate(args.sections):
        print_safely(f"== {section} ==")
        results["unfinished"] = {**results.get("unfinished", {}), section: args.run_id}
        write_results(args.out, results)
        section_start = time.perf_counter()
        try:
            records.update(SECTIONS[section](data, args))
        except UserError as error:
            finished = f"; sections {', '.join(args.sections[:done])} finished, their files kept"
            raise UserError(error.args[0].rstrip(".") + (finished if done else "") + ".") from None
        seconds = round(time.perf_counter() - section_start, 1)
        del results["unfinished"][section]
        results.update(records, seconds={**results.get("seconds", {}), section: seconds})
        write_results(args.out, results)
    return records


def main(argv=None):
    args = parse_args(argv)
    stdout = sys.stdout  # print_safely drops a closed one; the caller gets its own back
    try:
        with matplotlib.style.context(["default", FIGURE_STYLE]):  # whatever the caller's settings
            run(args)
    except UserError as error:
        print(f"Project3.py: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # an I/O failure that no check foresaw: still one sentence
        where = error.filename or "I/O"
        print(f"Project3.py: error: {where}: {error.strerror or error}.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Project3.py: interrupted; the files finished so far are whole.", file=sys.stderr)
        return 130
    finally:
        sys.stdout = stdout
    return 0


if __name__ == "__main__":
    sys.exit(main())
