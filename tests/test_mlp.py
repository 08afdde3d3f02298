"""The numpy MLP of sections 2.1-2.4: its API, its gradients (finite differences and torch
autograd), numerical stability, the training loop's call order, determinism, learning, saving and
loading."""

import sys
import warnings

import numpy as np
import pytest

from conftest import REAL_DATA, ROOT, P, import_path

PARAMS = ("W1", "b1", "W2", "b2")


def float64_net(seed=0):
    net = P.MLP(seed=seed)
    for name in PARAMS:
        setattr(net, name, getattr(net, name).astype(np.float64))
    net.b1 += np.linspace(-0.5, 0.5, 64)  # non-zero biases, so that their gradients are exercised
    net.b2 += np.linspace(-0.3, 0.3, 10)
    net.reset_grad()
    return net


def loss(net, y):
    """The cross-entropy -sum y log y_hat of net's last forward pass, summed over its images, from
    a2 (log-softmax), so that it stays finite where y_hat underflows to 0: what update_grad
    differentiates."""
    return float(-(np.reshape(y, net.a2.shape) * P.log_softmax(net.a2)).sum())


def random_batch(rng, n):
    return rng.random((n, 784)), np.eye(10)[rng.integers(0, 10, n)]


def real(split, n):
    x, y = P.load_data(REAL_DATA, (split,))[split]
    return x[:n], y[:n]


def test_initialisation_follows_section_2_2():
    net = P.MLP(seed=1)
    assert (
        net.W1.shape == (64, 784)
        and net.b1.shape == (64,)
        and net.W2.shape == (10, 64)
        and net.b2.shape == (10,)
    )
    assert all(getattr(net, n).dtype == np.float32 for n in PARAMS)
    assert not net.b1.any() and not net.b2.any()
    assert abs(net.W1.std() - 0.1) < 0.005 and abs(net.W1.mean()) < 0.005


def test_forward_for_one_image_and_a_batch():
    net = P.MLP(seed=0)
    x = np.random.default_rng(0).random((5, 784), dtype=np.float32)
    y_hat = net.forward(x)
    assert (
        y_hat.shape == (5, 10)
        and net.a1.shape == net.f1.shape == (5, 64)
        and net.a2.shape == (5, 10)
    )
    np.testing.assert_allclose(y_hat.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(net.forward(x[0]), y_hat[0], rtol=1e-5)


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
            net.forward(x)
            up = loss(net, y)
            flat[i] = old - eps
            net.forward(x)
            down = loss(net, y)
            flat[i] = old
            assert grad.reshape(-1)[i] == pytest.approx(
                (up - down) / (2 * eps), rel=1e-5, abs=1e-8
            ), f"{name}[{i}]"


def test_update_grad_adds_to_the_stored_gradients_and_reset_grad_clears_them():
    rng = np.random.default_rng(3)
    net = float64_net()
    x, y = random_batch(rng, 6)
    net.forward(x[:3])
    net.update_grad(y[:3])
    net.forward(x[3:])
    net.update_grad(y[3:])
    accumulated = {n: getattr(net, f"{n}_grad").copy() for n in PARAMS}
    net.reset_grad()
    assert not any(getattr(net, f"{n}_grad").any() for n in PARAMS)
    net.forward(x)
    net.update_grad(y)
    for n in PARAMS:
        np.testing.assert_allclose(accumulated[n], getattr(net, f"{n}_grad"), rtol=1e-10)


def test_gradients_and_loss_match_torch_autograd():
    torch = pytest.importorskip("torch")
    net = float64_net()
    x, y = random_batch(np.random.default_rng(4), 16)
    net.forward(x)
    net.update_grad(y)
    t = {n: torch.tensor(getattr(net, n), requires_grad=True) for n in PARAMS}
    a2 = torch.sigmoid(torch.tensor(x) @ t["W1"].T + t["b1"]) @ t["W2"].T + t["b2"]
    summed = torch.nn.functional.cross_entropy(a2, torch.tensor(y.argmax(1)), reduction="sum")
    summed.backward()
    assert loss(net, y) == pytest.approx(summed.item(), rel=1e-10)
    for n in PARAMS:
        np.testing.assert_allclose(
            getattr(net, f"{n}_grad"), t[n].grad.numpy(), rtol=1e-8, atol=1e-12
        )


def test_update_params_takes_a_plain_step():
    net = P.MLP(seed=0)
    before = {n: getattr(net, n).copy() for n in PARAMS}
    for n in PARAMS:
        getattr(net, f"{n}_grad")[...] = 1.0
    net.update_params(0.5)
    for n in PARAMS:
        np.testing.assert_allclose(getattr(net, n), before[n] - 0.5)


def test_adam_step_matches_torch_adam():
    torch = pytest.importorskip("torch")
    net = float64_net()
    t = [torch.tensor(getattr(net, n).copy(), requires_grad=True) for n in PARAMS]
    optimizer = torch.optim.Adam(t, lr=0.01)
    adam = P.AdamMLP(seed=0)
    for n in PARAMS:
        setattr(adam, n, getattr(net, n).copy())
    adam.reset_grad()
    rng = np.random.default_rng(5)
    for _ in range(3):
        grads = [rng.standard_normal(p.shape) for p in t]
        for n, g, p in zip(PARAMS, grads, t):
            setattr(adam, f"{n}_grad", g.copy())
            p.grad = torch.tensor(g)
        adam.update_params(0.01)
        optimizer.step()
    for n, p in zip(PARAMS, t):
        np.testing.assert_allclose(
            getattr(adam, n), p.detach().numpy(), rtol=1e-6, atol=1e-8
        )  # m, v in float32


def test_stable_on_raw_0_255_inputs_and_large_weights():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (32, 784)).astype(np.float32)  # forgot to divide by 255
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 32)]
    for scale in (1.0, 100.0):
        net = P.MLP(seed=0)
        net.W1 *= scale
        net.W2 *= scale
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an overflow or divide-by-zero warning fails the test
            y_hat = net.forward(x)
            cross_entropy = loss(net, y)
            net.update_grad(y)
        assert np.isfinite(y_hat).all() and np.isfinite(cross_entropy)
        assert all(np.isfinite(getattr(net, f"{n}_grad")).all() for n in PARAMS)


class RecordingMLP(P.MLP):
    """Logs every call of the four methods of section 2.4."""

    def __init__(self, log, **kw):
        self.log = log
        super().__init__(**kw)
        log.clear()  # not the reset_grad call of __init__

    def reset_grad(self):
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


def test_training_calls_the_four_methods_in_order():
    rng = np.random.default_rng(6)
    x, y = rng.random((600, 784), dtype=np.float32), rng.integers(0, 10, 600)
    log = []
    net = RecordingMLP(log, seed=0)
    data = {"train": (x, y), "val": (x[:50], y[:50])}
    P.train_mlp(net, data, epochs=2, batch=256, lr=0.001, seed=0, tag="test")
    starts = [i for i, call in enumerate(log) if call == "reset_grad"]
    assert len(starts) == 2 * 3  # 600 images in batches of 256: 3 steps an epoch
    for i in starts:
        assert log[i : i + 4] == ["reset_grad", "forward", "update_grad", ("update_params", 0.001)]
    in_steps = {i + k for i in starts for k in range(4)}
    outside_steps = {call for i, call in enumerate(log) if i not in in_steps}
    assert outside_steps == {"forward"}  # the evaluations


def test_same_seed_gives_identical_weights_and_another_seed_does_not():
    rng = np.random.default_rng(7)
    x, y = rng.random((300, 784), dtype=np.float32), rng.integers(0, 10, 300)

    def run(seed):
        net = P.AdamMLP(seed=seed)
        P.train_mlp(
            net,
            {"train": (x, y), "val": (x[:50], y[:50])},
            epochs=2,
            batch=64,
            lr=0.001,
            seed=seed,
            tag="test",
            lr_final=1e-4,
            augment=P.RandomAffine(**P.MLP_BEST["augment"]),
        )
        return net

    a, b, c = run(0), run(0), run(1)
    for n in PARAMS:
        np.testing.assert_array_equal(getattr(a, n), getattr(b, n))
    assert not np.array_equal(a.W1, c.W1)


def test_specified_training_learns_real_digits_and_adam_learns_faster():
    data = {"train": real("train", 2000), "val": real("val", 1000)}
    sgd, best = P.train_mlp(P.MLP(seed=0), data, epochs=5, batch=256, lr=0.001, seed=0, tag="sgd")
    assert sgd["val_acc"][-1] > 0.6 and sgd["val_acc"][-1] > sgd["val_acc"][0]  # chance is 0.1
    assert best["val_acc"] == max(sgd["val_acc"]) and sgd["step"] == [8, 16, 24, 32, 40]
    assert sgd["val_loss"][-1] < sgd["val_loss"][0]
    adam, _ = P.train_mlp(
        P.AdamMLP(seed=0), data, epochs=5, batch=256, lr=0.001, seed=0, tag="adam"
    )
    assert adam["val_acc"][-1] > sgd["val_acc"][-1]


def test_save_and_load_round_trip(tmp_path):
    net = P.MLP(seed=3)
    net.run_id = "run-3"
    net.save(tmp_path / "w.npz")
    back = P.MLP.load(tmp_path / "w.npz", "2.6")
    for n in PARAMS:
        np.testing.assert_array_equal(getattr(net, n), getattr(back, n))
    assert (back.seed, back.run_id) == (3, "run-3")  # what 2.8 and the readers check
    assert back.deskew is False
    net.deskew = True
    net.save(tmp_path / "w.npz")
    assert P.MLP.load(tmp_path / "w.npz", "2.6").deskew is True  # 2.7 feeds it deskewed images
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]  # no temporary left beside it


def test_augmentation_identity_and_integer_shift():
    x, _ = real("val", 16)
    same = P.RandomAffine(rotate_deg=0, scale=0, shear=0, shift=0)(x, np.random.default_rng(0))
    np.testing.assert_allclose(same, x, atol=1e-6)

    class ShiftByOne:  # draws +1 pixel for each shift, 0 for everything else
        def uniform(self, lo, hi, size):
            return np.full(size, 1.0 if np.all(np.asarray(hi) == 2) else 0.0)

    shift_by_one = P.RandomAffine(rotate_deg=1, scale=1, shear=1, shift=2)
    shifted = shift_by_one(x, ShiftByOne()).reshape(-1, 28, 28)
    np.testing.assert_allclose(shifted[:, 1:, 1:], x.reshape(-1, 28, 28)[:, :-1, :-1], atol=1e-5)
    assert not shifted[:, 0, :].any() and not shifted[:, :, 0].any()
    assert shifted.dtype == np.float32


def test_the_learning_rate_is_constant_as_specified_and_decays_as_a_cosine_in_2_6():
    assert [P.get_lr(epoch, 4, lr=0.001) for epoch in (1, 2, 3, 4)] == [0.001] * 4
    decay = [P.get_lr(epoch, 4, lr=3e-3, lr_final=2e-5) for epoch in (1, 2, 3, 4, 5)]
    assert decay[0] == pytest.approx(3e-3) and decay[4] == pytest.approx(2e-5)  # 5: past the end
    assert decay[2] == pytest.approx((3e-3 + 2e-5) / 2)  # half way
    assert all(a > b for a, b in zip(decay, decay[1:]))


def test_the_jacobians_of_2_3_1_have_their_shapes_and_sigma_prime():
    """The six matrices of MLP.jacobians at one image (their chaining into update_grad's
    gradients is section 2.3's check, tested below)."""
    net = P.MLP(seed=4)
    for name, theta in net.params().items():
        setattr(net, name, theta.astype(np.float64))
    J = net.jacobians(np.random.default_rng(4).random(784))
    shapes = {name: J[name].shape for name in J}
    assert shapes == {
        "da2/db2": (10, 10),
        "da2/dW2": (10, 640),
        "da2/df1": (10, 64),
        "df1/da1": (64, 64),
        "da1/dW1": (64, 64 * 784),
        "da1/db1": (64, 64),
    }
    eps = 1e-6  # df1/da1 against central differences
    a1 = net.a1[0]
    numeric = (P.sigmoid(a1 + eps) - P.sigmoid(a1 - eps)) / (2 * eps)
    np.testing.assert_allclose(np.diag(J["df1/da1"]), numeric, rtol=1e-6)


def test_section_2_3_measures_the_gradients_against_the_jacobians_and_finite_differences(
    monkeypatch,
):
    data = P.load_data(REAL_DATA, ("val",))
    args = P.parse_args(["--section", "2.3", "--seed", "3"])
    check = P.section_2_3(data, args)["gradient_check"]
    assert check["images"] == 8 and check["entries_per_parameter"] == 10
    assert check["chain_vs_backprop"] < 1e-12 and check["finite_vs_backprop"] < 1e-6
    update_grad = P.MLP.update_grad

    def one_percent_off(net, y):  # a wrong W1 gradient: what the check is there to catch
        update_grad(net, y)
        net.W1_grad *= 1.01

    monkeypatch.setattr(P.MLP, "update_grad", one_percent_off)
    check = P.section_2_3(data, args)["gradient_check"]
    assert check["chain_vs_backprop"] > 1e-3 and check["finite_vs_backprop"] > 1e-3


def bench_tool():
    """tools/bench.py, whose RandomBefore is 2.6's distortions as written plainly at 5b28598."""
    sys.path.insert(0, str(ROOT / "tools"))
    return import_path("bench", ROOT / "tools" / "bench.py")


@pytest.mark.slow
def test_the_distortions_are_bilinear_sampling_as_written_plainly_before():
    """2.6's RandomAffine against the plain version of 5b28598 (tools/bench.py's RandomBefore),
    which blends p (1 - w) + q w where RandomAffine takes p + w (q - p): the same maps, so the same
    images within float32's rounding of two such blends, whatever the batch size; large batches
    too (no cap on the batch)."""
    bench = bench_tool()
    x, _ = real("val", 1000)
    for cfg in (P.MLP_BEST["augment"], P.CNN_BEST["augment"]):
        now, before = P.RandomAffine(**cfg), bench.RandomBefore(**cfg)
        rng_now, rng_before = np.random.default_rng(9), np.random.default_rng(9)
        for start, B in ((0, 128), (128, 128), (256, 77), (333, 1)):
            images = x[start : start + B]
            expected = before(images, rng_before)
            got = now(images, rng_now)
            assert got.dtype == expected.dtype == np.float32
            np.testing.assert_allclose(got, expected, rtol=0, atol=3e-7)
            assert np.abs(got - images).mean() > 0.01  # and they do distort
    big = np.random.default_rng(1).random((20000, 784), dtype=np.float32)
    cfg = P.MLP_BEST["augment"]
    got = P.RandomAffine(**cfg)(big, np.random.default_rng(0))
    expected = bench.RandomBefore(**cfg)(big, np.random.default_rng(0))
    np.testing.assert_allclose(got, expected, rtol=0, atol=3e-7)


def slant(images):
    """cov(x, y) / var(y) of each image's ink: the shear deskew removes."""
    mass = images.sum(axis=1, keepdims=True)
    dx = P.PIXEL_X - images @ P.PIXEL_X[:, None] / mass
    dy = P.PIXEL_Y - images @ P.PIXEL_Y[:, None] / mass
    return (images * dx * dy).sum(axis=1) / (images * dy * dy).sum(axis=1)


def test_deskew_stands_slanted_digits_upright_and_leaves_upright_ones():
    x, _ = real("val", 500)
    straight = P.deskew(x)
    assert straight.dtype == np.float32 and straight.shape == x.shape
    assert np.abs(slant(x)).mean() > 0.2  # MNIST's digits lean ...
    assert np.abs(slant(straight)).mean() < 0.01  # ... and stand upright once deskewed
    assert np.abs(straight.sum(axis=1) / x.sum(axis=1) - 1).max() < 0.05  # the ink stays
    bar = np.zeros((1, 28, 28), np.float32)
    bar[0, 4:24, 12:15] = 1  # an upright stroke: nothing to undo
    np.testing.assert_allclose(P.deskew(bar.reshape(1, 784)), bar.reshape(1, 784), atol=1e-5)
    leaning = np.zeros((1, 28, 28), np.float32)
    for row in range(4, 24):  # the same stroke leaning right by half a pixel a row
        column = 13 + (23 - row) // 2
        leaning[0, row, column : column + 3] = 1
    rows = P.deskew(leaning.reshape(1, 784)).reshape(28, 28)[4:24]
    centres = (rows * np.arange(28)).sum(axis=1) / rows.sum(axis=1)
    assert np.ptp(centres) < 1.0  # every row's ink now in one column (within a pixel)
    assert not P.deskew(np.zeros((2, 784))).any()  # a blank image stays blank
    assert P.deskew(np.zeros((0, 784))).shape == (0, 784)
    np.testing.assert_array_equal(P.deskew(x, chunk=7), straight)  # chunks change nothing
