"""The data rules: what the loader accepts, the scaling rule, and each bad case refused before any
training with one sentence on stderr and exit status 2."""
import numpy as np
import pytest

from conftest import P, REAL_DATA, SCRIPT, make_small_data, run_script, write_split


def test_real_data_loads_as_float32_in_the_unit_range():
    data = P.load_data(REAL_DATA)
    assert {s: len(y) for s, (x, y) in data.items()} == dict(train=50000, val=5000, test=5000)
    for x, y in data.values():
        assert x.dtype == np.float32 and x.shape[1] == 784 and x.min() == 0 and x.max() == 1
        assert y.dtype == np.int64 and set(np.unique(y)) == set(range(10))


@pytest.mark.parametrize("variant", ["float01", "float255", "float64_01", "square", "int32_labels", "uint8_labels"])
def test_loader_accepts_a_graders_variants(tmp_path, variant):
    x8 = np.load(REAL_DATA / "MNIST_val_images.npy")[:50]
    y = np.load(REAL_DATA / "MNIST_val_labels.npy")[:50]
    images = dict(float01=x8.astype(np.float32) / 255, float255=x8.astype(np.float64), square=x8.reshape(-1, 28, 28),
                  float64_01=x8 / 255.0).get(variant, x8)
    labels = dict(int32_labels=y.astype(np.int32), uint8_labels=y.astype(np.uint8)).get(variant, y)
    write_split(tmp_path, "val", images, labels)
    x, y_out = P.load_data(tmp_path, ("val",))["val"]
    assert x.dtype == np.float32 and x.shape == (50, 784) and y_out.dtype == np.int64
    np.testing.assert_allclose(x, x8 / 255, atol=1e-6)
    np.testing.assert_array_equal(y_out, y)


def test_scale_is_decided_once_per_folder_from_its_values_not_its_dtype(tmp_path):
    x8 = np.load(REAL_DATA / "MNIST_val_images.npy")[:50]
    y = np.load(REAL_DATA / "MNIST_val_labels.npy")[:50]
    binary = (x8 > 127).astype(np.uint8)  # uint8 images holding 0 and 1: already in [0, 1]
    write_split(tmp_path / "a", "val", binary, y)
    np.testing.assert_array_equal(P.load_data(tmp_path / "a", ("val",))["val"][0], binary)
    write_split(tmp_path / "b", "train", x8, y)  # grey levels as uint8 and as float: both divided by 255
    write_split(tmp_path / "b", "val", x8.astype(np.float32), y)
    data = P.load_data(tmp_path / "b", ("train", "val"))
    np.testing.assert_array_equal(data["train"][0], data["val"][0])


def test_splits_scaled_differently_are_refused(tmp_path):
    x8 = np.load(REAL_DATA / "MNIST_val_images.npy")[:50]
    y = np.load(REAL_DATA / "MNIST_val_labels.npy")[:50]
    write_split(tmp_path, "train", x8, y)  # grey levels
    write_split(tmp_path, "val", x8.astype(np.float32) / 255, y)  # [0, 1]
    with pytest.raises(P.UserError, match=r"scale is in doubt \(largest per split: \{'train': 255.0, 'val': 1.0\}\)"):
        P.load_data(tmp_path, ("train", "val"))


@pytest.mark.parametrize("images, found", [
    (lambda x: np.where(x > 0, np.float32(1.0001), 0).astype(np.float32), "from 0 to 1.0001"),  # rounding in [0, 1]
    (lambda x: (x // 16).astype(np.uint8), "from 0 to 15"),  # grey levels 0-15
    (lambda x: x.astype(np.float32) - 1, "from -1 to 254"),
    (lambda x: x.astype(np.float32) * 2, "from 0 to 510"),
])
def test_a_scale_in_doubt_is_refused_with_the_range_found(tmp_path, images, found):
    x8 = np.load(REAL_DATA / "MNIST_val_images.npy")[:50]
    write_split(tmp_path, "val", images(x8), np.zeros(50, dtype=np.int64))
    with pytest.raises(P.UserError, match=f"pixels range {found}, so their scale is in doubt"):
        P.load_data(tmp_path, ("val",))


def test_data_folder_found_beside_the_script_then_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "HERE", tmp_path / "script")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(P.UserError, match="no data folder found"):
        P.find_data_dir()
    (tmp_path / "Project3_data").mkdir()
    assert P.find_data_dir() == tmp_path / "Project3_data"  # the working folder
    (tmp_path / "script" / "Project3_Data").mkdir(parents=True)
    assert P.find_data_dir() == tmp_path / "script" / "Project3_Data"  # beside the script comes first


def _break(folder, case):
    """Make one bad case in a good small folder; return the text the error must name."""
    img, lab = folder / "MNIST_train_images.npy", folder / "MNIST_train_labels.npy"
    x, y = np.load(img), np.load(lab)
    cases = {
        "missing_file": (lambda: lab.unlink(), "MNIST_train_labels.npy: file not found"),
        "not_npy": (lambda: img.write_bytes(b"these are not pixels"), "not a readable .npy array"),
        "truncated": (lambda: img.write_bytes(img.read_bytes()[:5000]), "not a readable .npy array"),
        "npz_renamed": (lambda: np.savez(open(img, "wb"), x=x), "an .npz archive renamed .npy"),
        "wrong_width": (lambda: np.save(img, x[:, :783]), "expected images of shape (N, 784) or (N, 28, 28), "
                                                          "found (600, 783)"),
        "strings": (lambda: np.save(img, x.astype(str)), "expected integer or floating-point pixels"),
        "non_finite": (lambda: np.save(img, np.where(np.arange(784) == 5, np.nan, x / 255).astype(np.float32)),
                       "600 pixels are NaN or infinite"),
        "labels_out_of_range": (lambda: np.save(lab, np.where(np.arange(600) == 0, 10, y)), "labels must lie in 0-9"),
        "float_labels": (lambda: np.save(lab, y.astype(np.float64)), "expected integer labels"),
        "count_mismatch": (lambda: np.save(lab, y[:-1]), "expected 600 labels, one per image"),
        "empty": (lambda: (np.save(img, x[:0]), np.save(lab, y[:0])), "the train split is empty"),
    }
    make, message = cases[case]
    make()
    return message


BAD_CASES = ["missing_file", "not_npy", "truncated", "npz_renamed", "wrong_width", "strings", "non_finite",
             "labels_out_of_range", "float_labels", "count_mismatch", "empty"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_data_is_one_sentence_and_exit_2_before_anything_is_written(small_data, case, capsys):
    expected = _break(small_data, case)
    out = small_data.parent / "out"
    status = P.main(["--part", "mlp", "--quick", "--data", str(small_data), "--out", str(out)])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert status == 2
    assert err.count("\n") == 0 and err.startswith("Project3.py: error: ")
    assert expected in err and "MNIST_train_" in err
    assert "epoch" not in captured.out and not out.exists()  # refused before any training or writing


def test_a_bad_test_split_is_refused_before_training(tmp_path, capsys):
    data = make_small_data(tmp_path / "data", test=(np.zeros((5, 783), np.uint8), np.zeros(5, np.int64)))
    assert P.main(["--part", "mlp", "--quick", "--data", str(data), "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert "MNIST_test_images.npy" in captured.err and "epoch" not in captured.out
    assert not (tmp_path / "out").exists()


def test_missing_data_folder_from_the_command_line(tmp_path):
    run = run_script(SCRIPT, "--part", "mlp", "--quick", "--data", tmp_path / "nowhere", "--out", tmp_path / "out",
                     cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip() == f"Project3.py: error: data folder {tmp_path / 'nowhere'} does not exist (given with --data)."
