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

try:  # Ctrl-C while importing (torch takes a second or two): one line and status 130
    import numpy as np

    from common import ROOT, P, pick_device, run_tool
except KeyboardInterrupt:
    print(f"{Path(__file__).name}: interrupted.", file=sys.stderr)
    sys.exit(130)


def check_regular_file(path):
    """Refuse a missing path, a folder, a FIFO or a device where a file belongs."""
    if not path.exists():
        raise P.UserError(f"{path}: file not found.")
    if not path.is_file():
        raise P.UserError(
            f"{path}: not a regular file (a folder, FIFO or device); expected a file."
        )


MAX_HEADER = 10_000  # bytes: numpy writes headers of a few dozen; numpy 1.19 sets no limit


def read_member(archive, member, where, shape):
    """The array in one member of an .npz archive, read without pickle from that very member once
    its header (the length of the header itself, then the shape and dtype it claims) is checked:
    nothing is allocated for what a file merely claims."""
    with archive.open(member) as file:
        start = file.read(12)
        if start[:6] != b"\x93NUMPY":
            raise P.UserError(f"{where}: not an .npy array.")
        length = int.from_bytes(start[8:10] if start[6] == 1 else start[8:12], "little")
        if length > MAX_HEADER:
            raise P.UserError(f"{where}: its header claims {length} bytes; refused.")
    with archive.open(member) as file:
        try:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                found_shape, _, dtype = np.lib.format.read_array_header_1_0(file)
            else:
                found_shape, _, dtype = np.lib.format.read_array_header_2_0(file)
        except Exception as error:  # an unknown version, a damaged header
            raise P.UserError(
                f"{where}: not a readable .npy array ({type(error).__name__}: {error})."
            ) from None
        if dtype.hasobject:
            raise P.UserError(f"{where}: holds Python objects, which are never unpickled.")
        if found_shape != tuple(shape) or dtype.kind != "f":
            raise P.UserError(
                f"{where}: expected shape {tuple(shape)} with floating-point values, found shape "
                f"{found_shape} of dtype {dtype}."
            )
    with archive.open(member) as file:
        return np.lib.format.read_array(file, allow_pickle=False)


def read_weights(path, shapes, what):
    """{name: float32 array} from an .npz of plain arrays: each array in shapes must be there, in
    the member name.npy and no other, with that shape and floating-point values (checked from its
    header before it is read), and finite; the run that wrote them (a string, or None); and
    whether the network reads deskewed images."""
    check_regular_file(path)
    if not zipfile.is_zipfile(path):
        raise P.UserError(
            f"{path}: not an .npz of {what} weights (damaged, cut short or another kind)."
        )
    found = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            for name, shape in shapes.items():
                if f"{name}.npy" not in members or name in members:
                    raise P.UserError(
                        f"{path}: expected one array {name} (member {name}.npy) among the {what} "
                        "weights."
                    )
                found[name] = read_member(archive, f"{name}.npy", f"{path}[{name}]", shape)
            run, deskewed = None, False
            if "run.npy" in members:
                with archive.open("run.npy") as file:
                    run = str(np.lib.format.read_array(file, allow_pickle=False))
            if "deskew.npy" in members:  # the network reads deskewed images (Project3.deskew)
                with archive.open("deskew.npy") as file:
                    flag = np.lib.format.read_array(file, allow_pickle=False)
                if flag.shape != () or flag.dtype.kind not in "iub" or flag not in (0, 1):
                    raise P.UserError(f"{path}: expected deskew to be 0 or 1, found {flag!r}.")
                deskewed = bool(flag)
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
    return {name: theta.astype(np.float32) for name, theta in found.items()}, run, deskewed


def load_mlp(path):
    """The MLP in path, and the run that trained it."""
    net = P.MLP()
    shapes = {name: theta.shape for name, theta in net.params().items()}
    arrays, run, net.deskew = read_weights(path, shapes, "MLP")
    for name, theta in arrays.items():
        setattr(net, name, theta)
    return net, run


def load_cnn(path, device):
    """The template CNN in path, on device, and the run that trained it."""
    old_format = path.with_suffix(".pt")
    if not path.exists() and old_format.exists():
        raise P.UserError(
            f"{old_format} holds the CNN in the pickle format of earlier versions, which is never "
            "read; run `python Project3.py --part cnn` to make cnn.npz."
        )
    net = P.ConvNet()
    shapes = {name: tuple(tensor.shape) for name, tensor in net.state_dict().items()}
    arrays, run, net.deskew = read_weights(path, shapes, "template CNN")
    net.load_state_dict({name: P.torch.from_numpy(array) for name, array in arrays.items()})
    return net.to(device), run


def check_record(weights, section, key, run_id):
    """Weights in a run's folder (weights/ beside figures/results.json) must be those its record
    describes, and their section finished (Project3's own check); weights from elsewhere are not
    held to anything."""
    if (weights.parent / "figures" / "results.json").is_file():
        P.saved_record(weights.parent, section, key, run_id)


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
    mlp, run = load_mlp(weights / "mlp.npz")
    check_record(weights, "2.6", "mlp_best", run)
    accuracy = P.accuracy_and_loss(P.mlp_log_probs(mlp, P.deskew(x) if mlp.deskew else x), y)[0]
    report = {"mlp": {"accuracy": round(accuracy, 4), "n": len(y)}}
    has_cnn = (weights / "cnn.npz").exists() or (weights / "cnn.pt").exists()
    if has_cnn and P.torch is None:
        print(
            f"note: the CNN in {weights} was not evaluated: no PyTorch ({P.TORCH_PROBLEM}).",
            file=sys.stderr,
        )
    elif has_cnn:
        cnn, run = load_cnn(weights / "cnn.npz", pick_device(args.device, needs_torch=True))
        check_record(weights, "3.4", "cnn_best", run)
        accuracy = P.accuracy_and_loss(P.cnn_log_probs(cnn, P.deskew(x) if cnn.deskew else x), y)[0]
        report["cnn"] = {"accuracy": round(accuracy, 4), "n": len(y)}
    print(json.dumps(report))


if __name__ == "__main__":
    sys.exit(run_tool(main))
