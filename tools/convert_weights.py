"""Converts CNN weights saved by earlier versions (weights/cnn.pt, weights/cnn_spec.pt: torch.save
pickles) into the .npz files that Project3.py reads now, without retraining.

    python tools/convert_weights.py [--out DIR]

The old files are read with torch.load(weights_only=True), which unpickles tensors only and refuses
anything that would run code; it needs torch 1.13 or newer. Each .pt is kept beside its .npz.
"""

import argparse
import sys

from common import P, out_dir, run_tool


def convert(pt_path):
    """The network in pt_path, rewritten as the .npz beside it; returns the .npz path."""
    torch = P.torch
    try:
        state = torch.load(pt_path, map_location="cpu", weights_only=True)
    except TypeError:
        raise P.UserError(
            f"{pt_path}: reading it safely needs torch 1.13 or newer (weights_only), found torch "
            f"{torch.__version__}; remake the weights with `python Project3.py --part cnn` instead."
        ) from None
    except Exception as err:
        raise P.UserError(
            f"{pt_path}: not a readable torch state dict ({type(err).__name__})."
        ) from None
    net = P.ConvNet()
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise P.UserError(
            f"{pt_path}: not the template CNN's weights ({type(err).__name__})."
        ) from None
    npz_path = pt_path.with_suffix(".npz")
    P.save_cnn(net, npz_path)
    return npz_path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="folder holding weights/ (default: the repository)")
    args = parser.parse_args(argv)
    if P.torch is None:
        raise P.UserError("converting .pt weights needs PyTorch, which is not installed here.")
    weights = out_dir(args.out) / "weights"
    old = sorted(weights.glob("cnn*.pt"))
    if not old:
        raise P.UserError(f"no CNN weights in the old format (cnn*.pt) in {weights}.")
    for pt_path in old:
        print(f"wrote {convert(pt_path)} from {pt_path.name}")


if __name__ == "__main__":
    sys.exit(run_tool(main))
