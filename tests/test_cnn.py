"""The template CNN of Part 2: shapes, parameter count, a training step, save/load, the command line."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import P, SCRIPT, make_small_data

torch = pytest.importorskip("torch")


def test_shapes_for_one_image_and_a_batch():
    net = P.ConvNet()
    assert net(torch.zeros(784)).shape == (10,)
    assert net(torch.zeros(5, 784)).shape == (5, 10)


def test_parameter_count_is_the_templates():
    assert sum(p.numel() for p in P.ConvNet().parameters()) == 44426


def test_every_network_built_is_of_the_one_convnet_class(tmp_path):
    # A class rebuilt on every call would make isinstance checks, and any change made to
    # Project3.ConvNet, silently miss the networks that training and loading create.
    ConvNet = P.ConvNet
    net = P.new_convnet(0)
    P.save_cnn(net.state_dict(), tmp_path / "cnn.pt")
    back = P.load_cnn(tmp_path / "cnn.pt")
    assert type(net) is ConvNet and type(back) is ConvNet and P.ConvNet is ConvNet


def test_description_table_comes_from_the_module():
    rows, total = P.describe_cnn(P.ConvNet())
    assert total == 44426
    by_layer = {r["layer"]: r for r in rows}
    assert by_layer["conv1"]["output"] == [6, 24, 24] and by_layer["conv2"]["output"] == [16, 8, 8]
    assert by_layer["conv1"]["kernel"] == "5x5" and by_layer["conv1"]["stride"] == 1 and by_layer["conv1"]["padding"] == 0
    assert [r["output"] for r in rows if r["layer"] == "pool"] == [[6, 12, 12], [16, 4, 4]]
    assert by_layer["fc1"]["params"] == 256 * 120 + 120
    tex = P.cnn_table_tex(rows, total)
    assert "44{,}426" in tex and tex.count(r"\\") == len(rows) + 2


def test_one_training_step_lowers_the_loss_on_a_fixed_batch():
    x, y = P.load_split(P.HERE / "Project3_data", "val")
    xb, yb = torch.from_numpy(x[:256]), torch.from_numpy(y[:256])
    torch.manual_seed(0)
    net = P.ConvNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    before = loss_fn(net(xb), yb)
    opt.zero_grad()
    before.backward()
    opt.step()
    assert loss_fn(net(xb), yb).item() < before.item()


def test_train_cnn_is_repeatable_on_the_cpu():
    rng = np.random.default_rng(0)
    x = rng.random((300, 784), dtype=np.float32)
    y = rng.integers(0, 10, 300)
    states = []
    for _ in range(2):
        net = P.new_convnet(0)
        P.train_cnn(net, (x, y), (x[:50], y[:50]), epochs=1, batch=64, make_optimizer=P.sgd_momentum, device="cpu")
        states.append(net.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k])


def test_save_load_gives_identical_predictions(tmp_path):
    torch.manual_seed(1)
    net = P.ConvNet()
    P.save_cnn(net.state_dict(), tmp_path / "cnn.pt")
    back = P.load_cnn(tmp_path / "cnn.pt")
    x = np.random.default_rng(1).random((64, 784), dtype=np.float32)
    with torch.no_grad():
        assert torch.equal(net(torch.from_numpy(x)), back(torch.from_numpy(x)))
    np.testing.assert_array_equal(P.cnn_predict(net, x, "cpu"), P.cnn_predict(back, x, "cpu"))


def test_quick_cnn_end_to_end_and_eval_with_both_models(tmp_path):
    folder = tmp_path / "submission"
    folder.mkdir()
    shutil.copy(SCRIPT, folder / "Project3.py")
    data = make_small_data(folder / "Project3_data", n_train=600, n_val=300, n_test=300)
    for part in ("mlp", "cnn"):
        run = subprocess.run([sys.executable, str(folder / "Project3.py"), "--part", part, "--quick"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
    results = json.loads((folder / "quick" / "figures" / "results.json").read_text())
    for key in ("cnn_spec", "cnn_best"):
        assert {"test_accuracy", "val_accuracy", "epochs", "train_seconds", "device"} <= results[key].keys()
    assert np.array(results["cnn_confusion"]["matrix"]).sum() == 300
    assert (folder / "quick" / "figures" / "cnn_table.tex").is_file()
    for name in ("cnn_spec_2000_accuracy", "cnn_spec_accuracy", "cnn_best_accuracy", "cnn_confusion"):
        assert (folder / "quick" / "figures" / f"{name}.png").is_file()

    run = subprocess.run([sys.executable, str(folder / "Project3.py"), "--part", "eval", "--quick", "--data", str(data)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    last = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(last) == {"mlp", "cnn"} and last["cnn"]["n"] == 300
    assert last["cnn"]["accuracy"] == pytest.approx(results["cnn_best"]["test_accuracy"], abs=1e-4)


def test_cuda_asked_for_without_a_gpu_is_a_clear_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert P.main(["--part", "cnn", "--quick", "--section", "3.1", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_quick_ablation_records_every_row_on_validation_only(tmp_path):
    # A row that sets its own epochs must not clash with --quick's; the test split is never read.
    data = make_small_data(tmp_path / "data", n_train=300, n_val=100, test=(np.full((5, 7), np.nan), np.zeros(5)))
    run = subprocess.run([sys.executable, str(SCRIPT), "--part", "ablation", "--quick", "--data", str(data),
                          "--out", str(tmp_path / "out"), "--device", "cpu"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    results = json.loads((tmp_path / "out" / "figures" / "results.json").read_text())
    for key, variants in (("mlp_ablation", P.MLP_ABLATION), ("cnn_ablation", P.CNN_ABLATION),
                          ("cnn_optimisers", P.CNN_OPTIMISERS)):
        assert len(results[key]) == len(variants)
        assert all(row["epochs"] == P.QUICK["epochs"] and 0 <= row["val_accuracy"] <= 1 for row in results[key])
