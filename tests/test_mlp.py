"""The numpy MLP of sections 2.1-2.4: shapes, gradients, stability, training loop, determinism."""
import warnings

import numpy as np
import pytest

from conftest import P

PARAMS = ("W1", "b1", "W2", "b2")


def float64_net(seed=0, weight_scale=1.0):
    net = P.MLP(seed=seed)
    for name in PARAMS:
        setattr(net, name, getattr(net, name).astype(np.float64) * weight_scale)
    net.b1 += np.linspace(-0.5, 0.5, 64)   # non-zero biases, so their gradients are exercised
    net.b2 += np.linspace(-0.3, 0.3, 10)
    net.reset_grad()
    return net


def random_batch(rng, n):
    x = rng.random((n, 784))
    y = P.one_hot(rng.integers(0, 10, n)).astype(np.float64)
    return x, y


def cross_entropy(net, x, y):
    net.forward(x)
    return net.loss(y)


def test_initialisation_follows_section_2_2():
    net = P.MLP(seed=1)
    assert net.W1.shape == (64, 784) and net.b1.shape == (64,)
    assert net.W2.shape == (10, 64) and net.b2.shape == (10,)
    assert all(getattr(net, n).dtype == np.float32 for n in PARAMS)
    assert not net.b1.any() and not net.b2.any()
    assert abs(net.W1.std() - 0.1) < 0.005 and abs(net.W1.mean()) < 0.005


def test_forward_shapes_single_image_and_batch():
    net = P.MLP(seed=0)
    x = np.random.default_rng(0).random((5, 784), dtype=np.float32)
    y_hat = net.forward(x)
    assert y_hat.shape == (5, 10) and net.a1.shape == net.f1.shape == (5, 64) and net.a2.shape == (5, 10)
    np.testing.assert_allclose(y_hat.sum(axis=1), 1, rtol=1e-5)
    one = net.forward(x[0])
    assert one.shape == (10,)
    np.testing.assert_allclose(one, y_hat[0], rtol=1e-5)


@pytest.mark.parametrize("n", [1, 7])
def test_update_grad_matches_central_finite_differences(n):
    rng = np.random.default_rng(n)
    net = float64_net()
    x, y = random_batch(rng, n)
    if n == 1:  # a single image goes in as (784,) and its target as (10,)
        x, y = x[0], y[0]
    net.forward(x)
    net.update_grad(y)
    eps = 1e-6
    for name in PARAMS:
        theta, grad = getattr(net, name), getattr(net, f"{name}_grad")
        assert grad.shape == theta.shape
        flat = theta.reshape(-1)
        for i in rng.choice(flat.size, size=min(25, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + eps
            up = cross_entropy(net, x, y)
            flat[i] = old - eps
            down = cross_entropy(net, x, y)
            flat[i] = old
            numeric = (up - down) / (2 * eps)
            assert grad.reshape(-1)[i] == pytest.approx(numeric, rel=1e-5, abs=1e-8), f"{name}[{i}]"


def test_update_grad_adds_to_the_stored_gradients():
    rng = np.random.default_rng(3)
    net = float64_net()
    x, y = random_batch(rng, 6)
    net.forward(x[:3]); net.update_grad(y[:3])
    net.forward(x[3:]); net.update_grad(y[3:])
    accumulated = {n: getattr(net, f"{n}_grad").copy() for n in PARAMS}
    net.reset_grad()
    assert not any(getattr(net, f"{n}_grad").any() for n in PARAMS)
    net.forward(x); net.update_grad(y)
    for n in PARAMS:
        np.testing.assert_allclose(accumulated[n], getattr(net, f"{n}_grad"), rtol=1e-10)


def test_gradients_match_torch_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    net = float64_net()
    x, y = random_batch(rng, 16)
    net.forward(x)
    net.update_grad(y)
    t = {n: torch.tensor(getattr(net, n), requires_grad=True) for n in PARAMS}
    a2 = torch.sigmoid(torch.tensor(x) @ t["W1"].T + t["b1"]) @ t["W2"].T + t["b2"]
    loss = torch.nn.functional.cross_entropy(a2, torch.tensor(y.argmax(1)), reduction="sum")
    loss.backward()
    assert net.loss(y) == pytest.approx(loss.item(), rel=1e-10)
    for n in PARAMS:
        np.testing.assert_allclose(getattr(net, f"{n}_grad"), t[n].grad.numpy(), rtol=1e-8, atol=1e-12)


def test_update_params_takes_a_plain_step():
    net = P.MLP(seed=0)
    before = {n: getattr(net, n).copy() for n in PARAMS}
    for n in PARAMS:
        getattr(net, f"{n}_grad")[...] = 1.0
    net.update_params(0.5)
    for n in PARAMS:
        np.testing.assert_allclose(getattr(net, n), before[n] - 0.5)


def test_stable_on_raw_0_255_inputs_and_large_weights():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (32, 784)).astype(np.float32)  # forgot to divide by 255
    y = P.one_hot(rng.integers(0, 10, 32))
    for scale in (1.0, 100.0):
        net = P.MLP(seed=0)
        net.W1 *= scale
        net.W2 *= scale
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an overflow or divide-by-zero warning fails the test
            y_hat = net.forward(x)
            loss = net.loss(y)
            net.update_grad(y)
        assert np.isfinite(y_hat).all() and np.isfinite(loss)
        assert all(np.isfinite(getattr(net, f"{n}_grad")).all() for n in PARAMS)


class RecordingMLP(P.MLP):
    def __init__(self, log, **kw):
        super().__init__(**kw)
        self.log = log

    def reset_grad(self):
        if hasattr(self, "log"):  # not the call from __init__
            self.log.append("reset_grad")
        super().reset_grad()

    def forward(self, x):
        self.log.append("forward")
        return super().forward(x)

    def update_grad(self, y):
        self.log.append("update_grad")
        super().update_grad(y)

    def update_params(self, lr):
        self.log.append(("update_params", lr))
        super().update_params(lr)


def test_training_loop_calls_the_four_methods_in_order():
    rng = np.random.default_rng(6)
    x = rng.random((600, 784), dtype=np.float32)
    y = rng.integers(0, 10, 600)
    log = []
    net = RecordingMLP(log, seed=0)
    P.train_mlp(net, (x, y), (x[:50], y[:50]), epochs=2, batch=256, lr=0.001)
    steps = [i for i, call in enumerate(log) if call == "reset_grad"]
    assert len(steps) == 2 * 3  # 600 images in batches of 256: 3 steps an epoch
    for i in steps:
        assert log[i:i + 4] == ["reset_grad", "forward", "update_grad", ("update_params", 0.001)]
    # outside the steps, only the evaluation's forward passes
    in_steps = {i + k for i in steps for k in range(4)}
    assert {call for i, call in enumerate(log) if i not in in_steps} == {"forward"}


def test_same_seed_gives_identical_weights_and_another_seed_does_not():
    rng = np.random.default_rng(7)
    x = rng.random((300, 784), dtype=np.float32)
    y = rng.integers(0, 10, 300)

    def run(seed):
        net = P.MLP(seed=seed)
        P.train_mlp(net, (x, y), (x[:50], y[:50]), epochs=2, batch=64, lr=0.001, seed=seed)
        return net

    a, b, c = run(0), run(0), run(1)
    for n in PARAMS:
        np.testing.assert_array_equal(getattr(a, n), getattr(b, n))
    assert not np.array_equal(a.W1, c.W1)


def test_specified_training_learns_real_digits():
    x, y = P.load_split(P.HERE / "Project3_data", "train")
    xv, yv = P.load_split(P.HERE / "Project3_data", "val")
    net = P.MLP(seed=0)
    history, best = P.train_mlp(net, (x[:2000], y[:2000]), (xv[:1000], yv[:1000]), epochs=5, batch=256, lr=0.001)
    assert history["val_acc"][-1] > 0.6  # far above chance (0.1) after 40 steps
    assert history["val_acc"][-1] > history["val_acc"][0]
    assert best["val_acc"] == max(history["val_acc"])


def test_adam_variant_trains_faster_than_plain_sgd():
    x, y = P.load_split(P.HERE / "Project3_data", "train")
    xv, yv = P.load_split(P.HERE / "Project3_data", "val")
    nets = {"sgd": P.MLP(seed=0), "adam": P.AdamMLP(seed=0)}
    acc = {}
    for name, net in nets.items():
        history, _ = P.train_mlp(net, (x[:2000], y[:2000]), (xv[:1000], yv[:1000]), epochs=2, batch=128, lr=0.001)
        acc[name] = history["val_acc"][-1]
    assert acc["adam"] > acc["sgd"]


def test_save_and_load_round_trip(tmp_path):
    net = P.MLP(seed=3)
    net.save(tmp_path / "w.npz")
    back = P.MLP.load(tmp_path / "w.npz")
    for n in PARAMS:
        np.testing.assert_array_equal(getattr(net, n), getattr(back, n))
    np.savez(tmp_path / "bad.npz", W1=np.zeros((3, 3)), b1=net.b1, W2=net.W2, b2=net.b2)
    with pytest.raises(P.DataError, match=r"W1 of shape \(64, 784\)"):
        P.MLP.load(tmp_path / "bad.npz")


def test_augmentation_identity_and_integer_shift():
    x, _ = P.load_split(P.HERE / "Project3_data", "val")
    x = x[:16]
    rng = np.random.default_rng(0)
    same = P.augment_affine(x, rng, rotate_deg=0, scale=0, shear=0, shift=0)
    np.testing.assert_allclose(same, x, atol=1e-6)

    class FixedShift:  # draws +1 for every shift, 0 for the rest
        def uniform(self, lo, hi, size):
            return np.full(size, 1.0 if np.all(np.asarray(hi) == 2) else 0.0)

    shifted = P.augment_affine(x, FixedShift(), rotate_deg=1, scale=1, shear=1, shift=2).reshape(-1, 28, 28)
    np.testing.assert_allclose(shifted[:, 1:, 1:], x.reshape(-1, 28, 28)[:, :-1, :-1], atol=1e-5)
    assert not shifted[:, 0, :].any() and not shifted[:, :, 0].any()


def test_confusion_matrix_and_summary():
    C = P.confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 0]))
    assert C[0, 0] == 1 and C[0, 1] == 1 and C[2, 0] == 2 and C.sum() == 6
    summary = P.confusion_summary(C)
    assert summary["top_confusions"][0] == dict(true=2, predicted=0, count=2)
    assert summary["per_class_accuracy"][2] == pytest.approx(1 / 3, abs=1e-4)
