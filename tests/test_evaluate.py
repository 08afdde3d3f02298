"""tools/evaluate.py: the saved networks of 2.6 and 3.4 on a test split. The weight files may come
from anywhere, so each damaged, crafted or misplaced one is one sentence and exit status 2, and
nothing in a file is ever run. It runs on the whole supported range (nox runs this file too)."""

import io
import json
import os
import pickle
import shutil
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest

from conftest import REAL_DATA, ROOT, P, import_path

sys.path.insert(0, str(ROOT / "tools"))
evaluate = import_path("evaluate", ROOT / "tools" / "evaluate.py")
common = sys.modules["common"]


def run_evaluate(*args):
    return common.run_tool(evaluate.main, [str(a) for a in args])


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def test_the_committed_networks_score_the_committed_test_accuracies(capsys):
    results = json.loads((ROOT / "figures" / "results.json").read_text())
    assert run_evaluate("--data", REAL_DATA, "--weights", ROOT / "weights") == 0
    scores = last_json(capsys.readouterr().out)
    assert scores["mlp"] == {"accuracy": round(results["mlp_best"]["test_accuracy"], 4), "n": 5000}
    if P.torch is not None:
        expected = round(results["cnn_best"]["test_accuracy"], 4)
        assert scores["cnn"] == {"accuracy": expected, "n": 5000}


def test_the_quick_runs_networks_score_what_the_run_reported(quick_run, capsys):
    folder, _ = quick_run
    results = json.loads((folder / "quick" / "figures" / "results.json").read_text())
    weights = folder / "quick" / "weights"
    assert run_evaluate("--data", folder / "Project3_Data", "--weights", weights) == 0
    scores = last_json(capsys.readouterr().out)
    assert scores["mlp"]["accuracy"] == round(results["mlp_best"]["test_accuracy"], 4)
    assert scores["cnn"]["accuracy"] == round(results["cnn_best"]["test_accuracy"], 4)


class Payload:
    """Unpickled, it creates a file: proof that a loader ran code from a weight file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def npz_claiming(path, arrays, name, shape):
    """An .npz like np.savez writes, except that member `name` claims `shape` in its .npy header
    while it holds a few bytes only."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape!r}, }}"
    header += " " * (63 - len(header) % 64) + "\n"
    crafted = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in arrays.items():
            member = io.BytesIO()
            np.save(member, array)
            archive.writestr(f"{key}.npy", crafted if key == name else member.getvalue())


def damage(weights, case):
    """Damage the committed weights (copied) in one way; returns the file the error must name."""
    mlp = weights / "mlp.npz"
    cnn = weights / "cnn.npz"
    params = dict(np.load(mlp))
    state = dict(np.load(cnn))
    if case == "mlp_truncated":
        mlp.write_bytes(mlp.read_bytes()[:1000])
    elif case == "mlp_shape":
        np.savez(mlp, **dict(params, W1=np.zeros((3, 3), np.float32)))
    elif case == "mlp_nan":
        np.savez(mlp, **dict(params, b2=np.full(10, np.nan, np.float32)))
    elif case == "mlp_missing_array":
        np.savez(mlp, **{k: v for k, v in params.items() if k != "W2"})
    elif case == "mlp_bad_crc":  # the zip's end record intact, one byte inside W1 changed
        data = bytearray(mlp.read_bytes())
        data[len(data) // 3] ^= 0xFF
        mlp.write_bytes(bytes(data))
    elif case == "mlp_huge_header":  # W1 claims 10^9 x 784 floats: 3 TB
        npz_claiming(mlp, params, "W1", (10**9, 784))
    elif case == "mlp_folder":
        mlp.unlink()
        mlp.mkdir()
    elif case == "mlp_code":  # a pickle that runs code if it is ever unpickled
        mlp.write_bytes(pickle.dumps(Payload(weights / "pwned"), protocol=2))
    elif case == "cnn_truncated":
        cnn.write_bytes(cnn.read_bytes()[:2000])
    elif case == "cnn_not_weights":
        cnn.write_bytes(b"PK\x03\x04 not a zip of arrays")
    elif case == "cnn_nan":
        np.savez(cnn, **dict(state, **{"fc3.bias": np.full(10, np.nan, np.float32)}))
    elif case == "cnn_code":
        cnn.write_bytes(pickle.dumps(Payload(weights / "pwned"), protocol=2))
    elif case == "cnn_code_inside":  # the same pickle as an object array inside a real .npz
        payload = np.empty(1, dtype=object)
        payload[0] = Payload(weights / "pwned")
        np.savez(cnn, **dict(state, **{"fc3.bias": payload}))
    elif case == "cnn_old_format":  # the torch.save pickle of earlier versions, and no .npz
        cnn.unlink()
        (weights / "cnn.pt").write_bytes(pickle.dumps(Payload(weights / "pwned"), protocol=2))
        return "cnn.pt"
    return "mlp.npz" if case.startswith("mlp") else "cnn.npz"


WEIGHT_CASES = [
    "mlp_truncated",
    "mlp_shape",
    "mlp_nan",
    "mlp_missing_array",
    "mlp_bad_crc",
    "mlp_huge_header",
    "mlp_folder",
    "mlp_code",
    "cnn_truncated",
    "cnn_not_weights",
    "cnn_nan",
    "cnn_code",
    "cnn_code_inside",
    "cnn_old_format",
]


@pytest.fixture()
def weights(tmp_path):
    shutil.copytree(ROOT / "weights", tmp_path / "weights")
    return tmp_path / "weights"


@pytest.mark.parametrize("case", WEIGHT_CASES)
def test_damaged_or_crafted_weights_are_one_sentence_and_run_nothing(weights, capsys, case):
    if case.startswith("cnn") and P.torch is None:
        pytest.skip("the CNN is read where torch imports")
    name = damage(weights, case)
    assert run_evaluate("--data", REAL_DATA, "--weights", weights) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and "Traceback" not in err
    assert not (weights / "pwned").exists()  # nothing in the file was run
    if case == "cnn_old_format":
        assert "tools/convert_weights.py" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_in_place_of_the_weights_is_refused_not_waited_on(weights, capsys):
    (weights / "mlp.npz").unlink()
    os.mkfifo(weights / "mlp.npz")
    assert run_evaluate("--data", REAL_DATA, "--weights", weights) == 2
    assert "mlp.npz: not a regular file" in capsys.readouterr().err


def test_a_weight_header_claiming_terabytes_is_refused_from_the_header(weights):
    damage(weights, "mlp_huge_header")
    tracemalloc.start()
    with pytest.raises(P.UserError, match=r"expected W1 of shape \(64, 784\).*\(1000000000, 784\)"):
        evaluate.load_mlp(weights / "mlp.npz")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20  # refused from the header: nothing allocated for the array


def test_without_torch_the_mlp_is_scored_and_a_note_names_the_cnn(weights, monkeypatch, capsys):
    monkeypatch.setattr(P, "torch", None)
    monkeypatch.setattr(P, "TORCH_PROBLEM", "ModuleNotFoundError: blocked by the test")
    assert run_evaluate("--data", REAL_DATA, "--weights", weights) == 0
    captured = capsys.readouterr()
    assert set(last_json(captured.out)) == {"mlp"}
    assert "the CNN in" in captured.err and "blocked by the test" in captured.err
