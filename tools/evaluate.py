"""The saved networks of 2.6 and 3.4 on a test split: what a grader's weights would score.

    python tools/evaluate.py [--data DIR] [--weights DIR] [--device cpu|cuda]

DIR of --weights holds mlp.npz and cnn.npz (default: weights/ of the repository); --data is a data
folder as for Project3.py (default: the repository's). The last line printed is JSON:
{"mlp": {"accuracy": a, "n": n}, "cnn": {"accuracy": a, "n": n}} (cnn only where torch imports).

The weight files may come from anywhere, so they are read with more care than Project3.py's own:
each .npy header is checked before its array is read (a file claiming terabytes is refused from
its header), FIFOs and devices are refused rather than waited on, and nothing is ever unpickled.
"""

import argparse
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

from common import ROOT, P, pick_device, run_tool

CONVERT = "convert it with `python tools/convert_weights.py`"


def check_regular_file(path):
    """Refuse a missing path, a folder, a FIFO or a device where a file belongs."""
    if not path.exists():
        raise P.UserError(f"{path}: file not found.")
    if not path.is_file():
        raise P.UserError(
            f"{path}: not a regular file (a folder, FIFO or device); expected a file."
        )


def read_npy_header(file, where):
    """(shape, dtype) of the .npy array in an open file, from its header alone: what the file
    claims to hold is checked before anything is allocated for it."""
    try:
        version = np.lib.format.read_magic(file)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(file)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(file)
    except Exception as error:  # not .npy, an unknown version, a damaged header
        raise P.UserError(
            f"{where}: not a readable .npy array ({type(error).__name__}: {error})."
        ) from None
    if dtype.hasobject:
        raise P.UserError(f"{where}: holds Python objects, which are never unpickled.")
    return shape, dtype


def read_weights(path, shapes, what):
    """{name: float32 array} from an .npz of plain arrays; each array in shapes must be there with
    that shape and floating-point values (checked from its header before it is read), and finite."""
    check_regular_file(path)
    if not zipfile.is_zipfile(path):
        raise P.UserError(
            f"{path}: not an .npz of {what} weights (damaged, cut short or another kind)."
        )
    found = {}
    try:
        with zipfile.ZipFile(path) as archive, np.load(path, allow_pickle=False) as saved:
            for name, shape in shapes.items():
                if f"{name}.npy" not in archive.namelist():
                    raise P.UserError(f"{path}: no array {name} among the {what} weights.")
                with archive.open(f"{name}.npy") as member:
                    found_shape, dtype = read_npy_header(member, f"{path}[{name}]")
                if found_shape != tuple(shape) or dtype.kind != "f":
                    raise P.UserError(
                        f"{path}: expected {name} of shape {tuple(shape)} with floating-point "
                        f"values, found shape {found_shape} of dtype {dtype}."
                    )
                found[name] = saved[name].astype(np.float32)
    except P.UserError:
        raise
    except Exception as error:  # a damaged archive: zipfile's, numpy's or the system's error
        raise P.UserError(
            f"{path}: no readable {what} weights ({type(error).__name__}: {error})."
        ) from None
    for name, theta in found.items():
        if not np.isfinite(theta).all():
            bad = np.count_nonzero(~np.isfinite(theta))
            raise P.UserError(f"{path}: {name} holds {bad} NaN or infinite values.")
    return found


def load_mlp(path):
    net = P.MLP()
    shapes = {name: theta.shape for name, theta in net.params().items()}
    for name, theta in read_weights(path, shapes, "MLP").items():
        setattr(net, name, theta)
    return net


def load_cnn(path, device):
    old_format = path.with_suffix(".pt")
    if not path.exists() and old_format.exists():
        raise P.UserError(
            f"{old_format} holds the CNN in the pickle format of earlier versions, which is never "
            f"read; {CONVERT}."
        )
    net = P.ConvNet()
    shapes = {name: tuple(tensor.shape) for name, tensor in net.state_dict().items()}
    arrays = read_weights(path, shapes, "template CNN")
    net.load_state_dict({name: P.torch.from_numpy(array) for name, array in arrays.items()})
    return net.to(device)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="The saved networks of 2.6 and 3.4 on a test split."
    )
    parser.add_argument("--data", help="data folder (default: as for Project3.py)")
    parser.add_argument("--weights", help="folder holding mlp.npz and cnn.npz (default: weights/)")
    parser.add_argument("--device", choices=["cpu", "cuda"])
    args = parser.parse_args(argv)
    if args.data == "" or args.weights == "":
        raise P.UserError("--data and --weights need a folder; an empty one was given.")
    weights = Path(args.weights).resolve() if args.weights else ROOT / "weights"
    x, y = P.load_data(P.find_data_dir(args.data), ("test",))["test"]
    mlp = load_mlp(weights / "mlp.npz")
    accuracy = P.accuracy_and_loss(P.mlp_log_probs(mlp, x), y)[0]
    report = {"mlp": {"accuracy": round(accuracy, 4), "n": len(y)}}
    has_cnn = (weights / "cnn.npz").exists() or (weights / "cnn.pt").exists()
    if has_cnn and P.torch is None:
        print(
            f"note: the CNN in {weights} was not evaluated: no PyTorch ({P.TORCH_PROBLEM}).",
            file=sys.stderr,
        )
    elif has_cnn:
        cnn = load_cnn(weights / "cnn.npz", pick_device(args.device, needs_torch=True))
        accuracy = P.accuracy_and_loss(P.cnn_log_probs(cnn, x), y)[0]
        report["cnn"] = {"accuracy": round(accuracy, 4), "n": len(y)}
    print(json.dumps(report))


if __name__ == "__main__":
    sys.exit(run_tool(main))
