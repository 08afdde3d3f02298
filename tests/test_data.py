"""The data loader: what it accepts, and each bad case rejected with one clear sentence, exit 2."""
import subprocess
import sys

import numpy as np
import pytest

from conftest import P, SCRIPT, make_small_data, write_split


def test_real_data_loads_as_float32_in_unit_range():
    data = P.load_data(splits=("train", "val", "test"))
    sizes = {s: len(y) for s, (x, y) in data.items()}
    assert sizes == dict(train=50000, val=5000, test=5000)
    for x, y in data.values():
        assert x.dtype == np.float32 and x.shape[1] == 784 and 0 <= x.min() and x.max() == 1
        assert y.dtype == np.int64 and set(np.unique(y)) == set(range(10))


@pytest.mark.parametrize("variant", ["float01", "float255", "square", "int32_labels", "uint8_labels"])
def test_loader_accepts_a_graders_variants(tmp_path, variant):
    x8 = np.load(P.HERE / "Project3_data" / "MNIST_val_images.npy")[:50]
    y = np.load(P.HERE / "Project3_data" / "MNIST_val_labels.npy")[:50]
    images = dict(float01=x8.astype(np.float32) / 255, float255=x8.astype(np.float64),
                  square=x8.reshape(-1, 28, 28)).get(variant, x8)
    labels = dict(int32_labels=y.astype(np.int32), uint8_labels=y.astype(np.uint8)).get(variant, y)
    write_split(tmp_path, "val", images, labels)
    x, y_out = P.load_split(tmp_path, "val")
    assert x.dtype == np.float32 and x.shape == (50, 784) and y_out.dtype == np.int64
    np.testing.assert_allclose(x, x8 / 255, atol=1e-6)
    np.testing.assert_array_equal(y_out, y)


def test_data_folder_found_beside_the_script_in_either_spelling(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "HERE", tmp_path)
    with pytest.raises(P.DataError, match="no data folder found"):
        P.find_data_dir()
    (tmp_path / "Project3_Data").mkdir()
    assert P.find_data_dir() == tmp_path / "Project3_Data"
    monkeypatch.chdir(tmp_path.parent)  # the working directory plays no part
    assert P.find_data_dir() == tmp_path / "Project3_Data"


def _break(folder, case):
    """Make one bad-data case in a good small folder; return the text the error must name."""
    img, lab = folder / "MNIST_train_images.npy", folder / "MNIST_train_labels.npy"
    x, y = np.load(img), np.load(lab)
    if case == "missing_file":
        lab.unlink()
        return "MNIST_train_labels.npy: file not found"
    if case == "not_npy":
        img.write_bytes(b"these are not pixels")
        return "not a readable .npy array"
    if case == "wrong_width":
        np.save(img, x[:, :783])
        return "expected images of shape (N, 784) or (N, 28, 28), found (400, 783)"
    if case == "non_finite":
        bad = x.astype(np.float32) / 255
        bad[3, 5] = np.nan
        np.save(img, bad)
        return "1 pixels are NaN or infinite"
    if case == "out_of_range_pixels":
        np.save(img, x.astype(np.float32) * 2)
        return "pixels must lie in [0, 1] or [0, 255]"
    if case == "labels_out_of_range":
        y[0] = 10
        np.save(lab, y)
        return "labels must lie in 0-9"
    if case == "float_labels":
        np.save(lab, y.astype(np.float64))
        return "expected integer labels"
    if case == "count_mismatch":
        np.save(lab, y[:-1])
        return "399 labels for 400 images"
    if case == "empty":
        np.save(img, x[:0])
        np.save(lab, y[:0])
        return "the train split is empty"
    raise AssertionError(case)


BAD_CASES = ["missing_file", "not_npy", "wrong_width", "non_finite", "out_of_range_pixels",
             "labels_out_of_range", "float_labels", "count_mismatch", "empty"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_data_is_one_sentence_on_stderr_and_exit_2(small_data, case, capsys):
    expected = _break(small_data, case)
    status = P.main(["--part", "mlp", "--section", "2.5", "--quick", "--data", str(small_data),
                     "--out", str(small_data.parent / "out")])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err.count("\n") == 0 and err.startswith("Project3.py: error: ")
    assert expected in err and "MNIST_train_" in err
    assert not (small_data.parent / "out" / "weights").exists()  # rejected before any training


def test_missing_folder_and_no_traceback_from_the_command_line(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), "--part", "mlp", "--quick", "--data",
                          str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.strip() == f"Project3.py: error: data folder {tmp_path / 'nowhere'} does not exist (given with --data)."


def test_small_data_helper_is_a_faithful_copy(tmp_path):
    folder = make_small_data(tmp_path / "d", n_train=10, n_val=10, n_test=10)
    x, y = P.load_split(folder, "train")
    assert x.shape == (10, 784) and len(y) == 10
