"""tools/evaluate.py: the saved networks of 2.6 and 3.4 on a test split. The weight files may come
from anywhere, so each damaged, crafted or misplaced one is one sentence and exit status 2, and
nothing in a file is ever run. It runs on the whole supported range (nox runs this file too)."""

import io
import json
import os
import shutil
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest

from conftest import REAL_DATA, ROOT, P, damage, import_path

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


WEIGHT_CASES = [
    "mlp_truncated",
    "mlp_shape",
    "mlp_nan",
    "mlp_missing_array",
    "mlp_bad_crc",
    "mlp_huge_header",
    "mlp_folder",
    "mlp_deskew_not_a_flag",
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
        assert "run `python Project3.py --part cnn` to make cnn.npz" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_in_place_of_the_weights_is_refused_not_waited_on(weights, capsys):
    (weights / "mlp.npz").unlink()
    os.mkfifo(weights / "mlp.npz")
    assert run_evaluate("--data", REAL_DATA, "--weights", weights) == 2
    assert "mlp.npz: not a regular file" in capsys.readouterr().err


def test_a_weight_header_claiming_terabytes_is_refused_from_the_header(weights):
    damage(weights, "mlp_huge_header")
    tracemalloc.start()
    with pytest.raises(P.UserError, match=r"expected shape \(64, 784\).*\(1000000000, 784\)"):
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


def test_an_archive_holding_an_array_twice_under_two_names_is_refused(weights, capsys):
    """np.load(npz)["W1"] reads a member named W1 where there is one, W1.npy otherwise: an
    archive with both could have its header checked in one and its data read from the other."""
    params = dict(np.load(weights / "mlp.npz"))
    with zipfile.ZipFile(weights / "mlp.npz", "w") as archive:
        for name, array in params.items():
            member = io.BytesIO()
            np.save(member, array)
            archive.writestr(f"{name}.npy", member.getvalue())
        big = io.BytesIO()
        np.save(big, np.zeros((64, 784 * 8), np.float32))
        archive.writestr("W1", big.getvalue())
    assert run_evaluate("--data", REAL_DATA, "--weights", weights) == 2
    assert "expected one array W1 (member W1.npy)" in capsys.readouterr().err


def test_a_header_claiming_hundreds_of_megabytes_is_refused_before_it_is_read(weights):
    """numpy 1.19 reads any header length a file claims; the length is checked first."""
    params = dict(np.load(weights / "mlp.npz"))
    claimed = b"\x93NUMPY\x02\x00" + (400 * 2**20).to_bytes(4, "little") + b"{"
    with zipfile.ZipFile(weights / "mlp.npz", "w") as archive:
        for name, array in params.items():
            member = io.BytesIO()
            np.save(member, array)
            archive.writestr(f"{name}.npy", claimed if name == "W1" else member.getvalue())
    tracemalloc.start()
    with pytest.raises(P.UserError, match=f"its header claims {400 * 2**20} bytes"):
        evaluate.load_mlp(weights / "mlp.npz")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20


def test_weights_beside_a_record_of_another_run_or_an_unfinished_section_are_refused(
    quick_run, tmp_path, capsys
):
    shutil.copytree(quick_run[0] / "quick", tmp_path / "run")
    weights, data = tmp_path / "run" / "weights", quick_run[0] / "Project3_Data"
    assert run_evaluate("--data", data, "--weights", weights) == 0
    results_path = tmp_path / "run" / "figures" / "results.json"
    results = json.loads(results_path.read_text())
    results_path.write_text(json.dumps({**results, "unfinished": {"3.4": "a run"}}))
    assert run_evaluate("--data", data, "--weights", weights) == 2
    assert "section 3.4 did not finish" in capsys.readouterr().err
    results["mlp_best"]["run"] = "another run"
    results_path.write_text(json.dumps(results))
    assert run_evaluate("--data", data, "--weights", weights) == 2
    assert "the weights of section 2.6" in capsys.readouterr().err


def test_a_network_trained_on_deskewed_digits_is_scored_on_deskewed_digits(weights, capsys):
    x, y = P.load_data(REAL_DATA, ("test",))["test"]
    net = P.MLP.load(weights / "mlp.npz", "2.6")
    for deskewed in (False, True):
        net.deskew = deskewed
        net.save(weights / "mlp.npz")
        assert run_evaluate("--data", REAL_DATA, "--weights", weights) == 0
        seen = P.deskew(x) if deskewed else x
        expected = P.accuracy_and_loss(P.mlp_log_probs(net, seen), y)[0]
        assert last_json(capsys.readouterr().out)["mlp"]["accuracy"] == round(expected, 4)
