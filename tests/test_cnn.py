"""The template CNN of Part 2: shapes, the 3.1 description, training, saving and loading, and the
distortions, which must be the numpy ones of 2.6."""

import json

import numpy as np
import pytest

from conftest import REAL_DATA, P

torch = pytest.importorskip("torch")


def test_shapes_and_parameter_count_of_the_template():
    net = P.ConvNet()
    assert net(torch.zeros(5, 784)).shape == (5, 10)
    assert sum(p.numel() for p in net.parameters()) == 44426


def test_section_3_1_describes_the_module_itself(tmp_path):
    assert P.main(["--section", "3.1", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "figures" / "results.json").read_text())["cnn_architecture"][
        "layers"
    ]
    by_layer = {r["layer"]: r for r in rows}
    assert [r["layer"] for r in rows] == ["conv1", "pool", "conv2", "pool", "fc1", "fc2", "fc3"]
    assert by_layer["conv1"]["output"] == [6, 24, 24] and by_layer["conv2"]["output"] == [16, 8, 8]
    assert (
        by_layer["conv1"]["kernel_size"],
        by_layer["conv1"]["stride"],
        by_layer["conv1"]["padding"],
    ) == (5, 1, 0)
    assert [r["output"] for r in rows if r["layer"] == "pool"] == [[6, 12, 12], [16, 4, 4]]
    assert by_layer["fc1"]["input"] == [256] and by_layer["fc1"]["params"] == 256 * 120 + 120
    assert sum(r["params"] for r in rows) == 44426


def test_3_1_records_the_layers_that_forward_calls_in_its_order(monkeypatch):
    """The rows come from forward() itself, not from a list beside it: each row's output is the
    next row's input up to the flattening, and a forward() that calls conv1 and pool alone gives
    those two rows."""
    record = P.section_3_1(None, None)["cnn_architecture"]
    rows = record["layers"]
    assert all(a["output"] == b["input"] for a, b in zip(rows[:3], rows[1:4]))
    assert record["total_params"] == sum(r["params"] for r in rows) == 44426
    monkeypatch.setattr(
        P.ConvNet, "forward", lambda net, x: net.pool(net.conv1(x.reshape(-1, 1, 28, 28)))
    )
    rows = P.section_3_1(None, None)["cnn_architecture"]["layers"]
    assert [(r["layer"], r["output"]) for r in rows] == [
        ("conv1", [6, 24, 24]),
        ("pool", [6, 12, 12]),
    ]


def test_torch_distortions_are_the_numpy_ones():
    x = np.load(REAL_DATA / "MNIST_val_images.npy")[:64].astype(np.float32) / 255
    augment = P.CNN_BEST["augment"]
    numpy_images = P.RandomAffine(**augment)(x, np.random.default_rng(3))
    torch_images = P.RandomAffineTorch(**augment)(torch.from_numpy(x), np.random.default_rng(3))
    np.testing.assert_allclose(torch_images.numpy(), numpy_images, atol=1e-4)
    assert np.abs(numpy_images - x).mean() > 0.02  # and they do distort


def test_train_cnn_lowers_the_loss_and_repeats_exactly_on_the_cpu():
    x, y = P.load_data(REAL_DATA, ("val",))["val"]
    data = {"train": (x[:512], y[:512]), "val": (x[512:768], y[512:768])}
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        net = P.ConvNet()
        optimizer = torch.optim.SGD(net.parameters(), lr=P.SPEC["lr"])
        history, _ = P.train_cnn(
            net,
            data,
            epochs=3,
            batch=64,
            optimizer=optimizer,
            loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"),
            seed=0,
            tag="test",
            augment=P.RandomAffineTorch(**P.CNN_BEST["augment"]),
        )
        states.append(net.state_dict())
    assert history["train_loss"][-1] < history["train_loss"][0] and history["step"] == [8, 16, 24]
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k])


def test_save_and_load_give_identical_predictions(tmp_path):
    torch.manual_seed(1)
    net = P.ConvNet()
    P.save_cnn(net, tmp_path / "cnn.npz", "run-1")
    back = P.ConvNet()
    arrays = np.load(tmp_path / "cnn.npz", allow_pickle=False)  # plain arrays, as state_dict
    assert str(arrays["run"]) == "run-1"  # and the run that made them
    back.load_state_dict({name: torch.from_numpy(arrays[name]) for name in back.state_dict()})
    x = np.random.default_rng(1).random((64, 784), dtype=np.float32)
    np.testing.assert_array_equal(P.cnn_log_probs(net, x), P.cnn_log_probs(back, x))
    assert [p.name for p in tmp_path.iterdir()] == ["cnn.npz"]


def test_cnn_weights_are_plain_arrays_that_need_no_pickle(tmp_path):
    torch.manual_seed(2)
    P.save_cnn(P.ConvNet(), tmp_path / "cnn.npz", "run-2")
    with np.load(tmp_path / "cnn.npz", allow_pickle=False) as saved:
        assert sorted(saved.files) == sorted([*P.ConvNet().state_dict(), "run"])
        assert all(saved[name].dtype == np.float32 for name in P.ConvNet().state_dict())
