"""The data rules: what the loader accepts, the scaling rule, and each bad case refused before any
training with one sentence on stderr and exit status 2."""

from pathlib import Path

import numpy as np
import pytest

from conftest import REAL_DATA, SCRIPT, P, make_small_data, run_script, write_split


def test_real_data_loads_as_float32_in_the_unit_range():
    data = P.load_data(REAL_DATA)
    assert {s: len(y) for s, (x, y) in data.items()} == {"train": 50000, "val": 5000, "test": 5000}
    for x, y in data.values():
        assert x.dtype == np.float32 and x.shape[1] == 784 and x.min() == 0 and x.max() == 1
        assert y.dtype == np.int64 and set(np.unique(y)) == set(range(10))


VARIANTS = [
    "float01",
    "float255",
    "float64_01",
    "float16_01",
    "big_endian_float",
    "square",
    "int32_labels",
    "uint8_labels",
    "big_endian_labels",
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_loader_accepts_a_graders_variants(tmp_path, variant):
    x8 = np.load(REAL_DATA / "MNIST_val_images.npy")[:50]
    y = np.load(REAL_DATA / "MNIST_val_labels.npy")[:50]
    images = {
        "float01": x8.astype(np.float32) / 255,
        "float255": x8.astype(np.float64),
        "float64_01": x8 / 255.0,
        "float16_01": (x8 / 255.0).astype(np.float16),
        "big_endian_float": (x8 / 255.0).astype(">f4"),
        "square": x8.reshape(-1, 28, 28),
    }.get(variant, x8)
    labels = {
        "int32_labels": y.astype(np.int32),
        "uint8_labels": y.astype(np.uint8),
        "big_endian_labels": y.astype(">i8"),
    }.get(variant, y)
    write_split(tmp_path, "val", images, labels)
    x, y_out = P.load_data(tmp_path, ("val",))["val"]
    assert x.dtype == np.float32 and x.shape == (50, 784) and y_out.dtype == np.int64
    tolerance = 1e-3 if variant == "float16_01" else 1e-6  # float16 keeps 11 bits
    np.testing.assert_allclose(x, x8 / 255, atol=tolerance)
    np.testing.assert_array_equal(y_out, y)


def test_scale_is_decided_once_per_folder_from_its_values_not_its_dtype(tmp_path):
    x8 = np.load(REAL_DATA / "MNIST_val_images.npy")[:50]
    y = np.load(REAL_DATA / "MNIST_val_labels.npy")[:50]
    binary = (x8 > 127).astype(np.uint8)  # uint8 images holding 0 and 1: already in [0, 1]
    write_split(tmp_path / "a", "val", binary, y)
    np.testing.assert_array_equal(P.load_data(tmp_path / "a", ("val",))["val"][0], binary)
    write_split(
        tmp_path / "b", "train", x8, y
    )  # grey levels as uint8 and as float: both divided by 255
    write_split(tmp_path / "b", "val", x8.astype(np.float32), y)
    data = P.load_data(tmp_path / "b", ("train", "val"))
    np.testing.assert_array_equal(data["train"][0], data["val"][0])


def test_splits_scaled_differently_are_refused(tmp_path):
    x8 = np.load(REAL_DATA / "MNIST_val_images.npy")[:50]
    y = np.load(REAL_DATA / "MNIST_val_labels.npy")[:50]
    write_split(tmp_path, "train", x8, y)  # grey levels
    write_split(tmp_path, "val", x8.astype(np.float32) / 255, y)  # [0, 1]
    with pytest.raises(
        P.UserError,
        match=r"scale is in doubt \(largest per split: \{'train': 255.0, 'val': 1.0\}\)",
    ):
        P.load_data(tmp_path, ("train", "val"))


@pytest.mark.parametrize(
    "images, found",
    [
        (
            lambda x: np.where(x > 0, np.float32(1.0001), 0).astype(np.float32),
            "from 0 to 1.00010002",
        ),  # rounding in [0, 1]
        (  # one float32 step above 1: the message shows the value, not a rounded 1
            lambda x: np.where(x > 0, np.nextafter(np.float32(1), np.float32(2)), 0),
            "from 0 to 1.00000012",
        ),
        (lambda x: (x // 16).astype(np.uint8), "from 0 to 15"),  # grey levels 0-15
        (lambda x: x.astype(np.float32) - 1, "from -1 to 254"),
        (lambda x: x.astype(np.float32) * 2, "from 0 to 510"),
    ],
)
def test_a_scale_in_doubt_is_refused_with_the_range_found(tmp_path, images, found):
    x8 = np.load(REAL_DATA / "MNIST_val_images.npy")[:50]
    write_split(tmp_path, "val", images(x8), np.zeros(50, dtype=np.int64))
    with pytest.raises(P.UserError, match=f"pixels range {found}, so their scale is in doubt"):
        P.load_data(tmp_path, ("val",))


def test_data_folder_found_beside_the_script_then_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "HERE", tmp_path)  # run from the script's own folder
    monkeypatch.chdir(tmp_path)
    with pytest.raises(P.UserError) as raised:
        P.find_data_dir()
    names = f"{tmp_path / 'Project3_data'} or {tmp_path / 'Project3_Data'} to be a folder"
    assert f"no data folder: expected {names}" in str(raised.value)  # each folder named once
    monkeypatch.setattr(P, "HERE", tmp_path / "script")
    with pytest.raises(P.UserError, match="no data folder: expected"):
        P.find_data_dir()
    (tmp_path / "Project3_data").mkdir()
    assert P.find_data_dir() == tmp_path / "Project3_data"  # the working folder
    (tmp_path / "script" / "Project3_Data").mkdir(parents=True)
    assert (
        P.find_data_dir() == tmp_path / "script" / "Project3_Data"
    )  # beside the script comes first


def _break(folder, case):
    """Make one bad case in a good small folder; return the text the error must name."""
    img = folder / "MNIST_train_images.npy"
    lab = folder / "MNIST_train_labels.npy"
    x = np.load(img)
    y = np.load(lab)
    if case == "missing_file":
        lab.unlink()
        return "MNIST_train_labels.npy: file not found"
    if case == "not_npy":
        img.write_bytes(b"these are not pixels")
        return "saved by numpy.save, found another kind of file"
    if case == "truncated":
        img.write_bytes(img.read_bytes()[:5000])
        return "not a readable .npy array"
    if case == "npz_renamed":
        with open(img, "wb") as file:
            np.savez(file, x=x)
        return (
            "expected integer or floating-point pixels saved by numpy.save, found an .npz archive"
        )
    if case == "wrong_width":
        np.save(img, x[:, :783])
        return "expected images of shape (N, 784) or (N, 28, 28), found (600, 783)"
    if case == "strings":
        np.save(img, x.astype(str))
        return "expected integer or floating-point pixels, found dtype <U3"
    if case == "bool_images":
        np.save(img, x > 0)
        return "expected integer or floating-point pixels, found dtype bool"
    if case == "complex_images":
        np.save(img, x.astype(np.complex64))
        return "expected integer or floating-point pixels, found dtype complex64"
    if case == "objects":
        np.save(img, np.array([x, None], dtype=object), allow_pickle=True)
        return "not a readable .npy array (Object arrays cannot be loaded"
    if case == "non_finite":
        np.save(img, np.where(np.arange(784) == 5, np.nan, x / 255).astype(np.float32))
        return "600 pixels are NaN or infinite"
    if case == "labels_out_of_range":
        np.save(lab, np.where(np.arange(600) == 0, 10, y))
        return "labels must lie in 0-9"
    if case == "float_labels":
        np.save(lab, y.astype(np.float64))
        return "expected integer labels"
    if case == "count_mismatch":
        np.save(lab, y[:-1])
        return "expected 600 labels, one per image"
    if case == "empty":
        np.save(img, x[:0])
        np.save(lab, y[:0])
        return "the train split is empty"
    raise AssertionError(case)


BAD_CASES = [
    "missing_file",
    "not_npy",
    "truncated",
    "npz_renamed",
    "wrong_width",
    "strings",
    "bool_images",
    "complex_images",
    "objects",
    "non_finite",
    "labels_out_of_range",
    "float_labels",
    "count_mismatch",
    "empty",
]


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
    assert "epoch" not in captured.out
    assert not out.exists()  # refused before any training or writing


def test_a_data_file_that_cannot_be_read_is_one_sentence(small_data, monkeypatch, capsys):
    """As a non-root user meets a file without read permission (root reads it regardless)."""
    locked = small_data / "MNIST_val_labels.npy"
    real_open = open

    def open_refusing(path, *args, **kwargs):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", open_refusing)
    out = small_data.parent / "out"
    assert P.main(["--part", "mlp", "--quick", "--data", str(small_data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{locked}: cannot be read (Permission denied)" in err


def test_a_bad_test_split_is_refused_before_training(tmp_path, capsys):
    data = make_small_data(
        tmp_path / "data", test=(np.zeros((5, 783), np.uint8), np.zeros(5, np.int64))
    )
    out = tmp_path / "out"
    assert P.main(["--part", "mlp", "--quick", "--data", str(data), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "MNIST_test_images.npy" in captured.err and "epoch" not in captured.out
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_missing_data_folder_from_the_command_line(tmp_path):
    run = run_script(
        SCRIPT,
        "--part",
        "mlp",
        "--quick",
        "--data",
        tmp_path / "nowhere",
        "--out",
        tmp_path / "out",
        cwd=tmp_path,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    expected = (
        f"no data folder: expected {tmp_path / 'nowhere'} to be a folder (--data DIR names one)."
    )
    assert run.stderr.strip() == f"Project3.py: error: {expected}"
