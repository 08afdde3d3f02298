"""End to end: the command line as a grader runs it, the import rule, the test split never read
for training."""
import ast
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import P, SCRIPT, make_small_data

ALLOWED_TOP_LEVEL = {"numpy", "matplotlib", "time"}


def block_torch(folder):
    """A folder which, first on PYTHONPATH, makes `import torch` fail as on a machine without it."""
    (folder / "torch").mkdir(parents=True)
    (folder / "torch" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'torch' (blocked by the test)\", name='torch')\n")
    return folder


def run_script(script, *args, cwd, env_path=None):
    env = None if env_path is None else dict(os.environ, PYTHONPATH=str(env_path))
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture()
def grader_layout(tmp_path):
    """The script beside a small Project3_Data (the other spelling), run from elsewhere."""
    folder = tmp_path / "submission"
    folder.mkdir()
    shutil.copy(SCRIPT, folder / "Project3.py")
    make_small_data(folder / "Project3_Data", n_train=600, n_val=300, n_test=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return folder, elsewhere


def test_quick_mlp_end_to_end_without_torch(grader_layout, tmp_path):
    folder, elsewhere = grader_layout
    run = run_script(folder / "Project3.py", "--part", "mlp", "--quick", cwd=elsewhere,
                     env_path=block_torch(tmp_path / "blocked"))
    assert run.returncode == 0, run.stderr
    out = folder / "quick"
    for name in ("mlp_spec_2000_accuracy", "mlp_spec_accuracy", "mlp_best_accuracy", "mlp_confusion",
                 "mlp_templates"):
        assert (out / "figures" / f"{name}.pdf").stat().st_size > 1000
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    results = json.loads((out / "figures" / "results.json").read_text())
    for key in ("mlp_spec", "mlp_best"):
        assert {"test_accuracy", "val_accuracy", "epochs", "train_seconds"} <= results[key].keys()
        assert 0 <= results[key]["test_accuracy"] <= 1
    C = np.array(results["mlp_confusion"]["matrix"])
    assert C.shape == (10, 10) and C.sum() == 300
    progress_lines = [l for l in run.stdout.splitlines() if "epoch" in l and "ETA" in l]
    assert len(progress_lines) == 3 * 2 and "train" in progress_lines[0] and "val" in progress_lines[0]

    # --part eval: saved weights, the test split only, one JSON object on the last line
    run = run_script(folder / "Project3.py", "--part", "eval", "--quick", cwd=elsewhere,
                     env_path=tmp_path / "blocked")
    assert run.returncode == 0, run.stderr
    last = json.loads(run.stdout.strip().splitlines()[-1])
    assert last["mlp"]["n"] == 300
    assert last["mlp"]["accuracy"] == pytest.approx(results["mlp_best"]["test_accuracy"], abs=1e-4)

    # a trained CNN beside it is skipped with a note when torch is missing, not an error
    shutil.copy(P.HERE / "weights" / "cnn.pt", out / "weights" / "cnn.pt")
    run = run_script(folder / "Project3.py", "--part", "eval", "--quick", cwd=elsewhere,
                     env_path=tmp_path / "blocked")
    assert run.returncode == 0, run.stderr
    assert set(json.loads(run.stdout.strip().splitlines()[-1])) == {"mlp"}
    assert "not evaluated: PyTorch is not installed" in run.stderr


def test_training_never_reads_the_test_split(tmp_path):
    """The same run with the test split replaced by random garbage saves identical weights."""
    rng = np.random.default_rng(0)
    garbage = (rng.integers(0, 256, (300, 784)).astype(np.uint8), rng.integers(0, 10, 300))
    weights = {}
    for name, test in (("real", None), ("garbage", garbage)):
        data = make_small_data(tmp_path / name / "data", n_train=600, n_val=300, n_test=300, test=test)
        out = tmp_path / name / "out"
        for section in ("2.5", "2.6"):
            assert P.main(["--part", "mlp", "--section", section, "--quick", "--data", str(data),
                           "--out", str(out)]) == 0
        weights[name] = {f: dict(np.load(out / "weights" / f)) for f in ("mlp_spec.npz", "mlp.npz")}
    for f, params in weights["real"].items():
        for k, v in params.items():
            np.testing.assert_array_equal(v, weights["garbage"][f][k])


def test_project3_imports_only_what_the_assignment_allows():
    tree = ast.parse(SCRIPT.read_text())
    top_level = set()
    for node in tree.body:  # module level: numpy, matplotlib, time and the standard library
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            top_level |= {n.split(".")[0] for n in names}
    assert top_level - sys.stdlib_module_names <= ALLOWED_TOP_LEVEL
    everywhere = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                  for a in node.names}
    everywhere |= {node.module.split(".")[0] for node in ast.walk(tree)
                   if isinstance(node, ast.ImportFrom) and node.module}
    assert everywhere - sys.stdlib_module_names <= ALLOWED_TOP_LEVEL | {"torch"}


def test_importing_project3_has_no_side_effects_and_no_torch(tmp_path):
    code = ("import sys, importlib.util as u; s = u.spec_from_file_location('P', sys.argv[1]); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); print('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code, str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"
    assert list(tmp_path.iterdir()) == []


def test_part_cnn_without_torch_is_a_clear_error(grader_layout, tmp_path):
    folder, elsewhere = grader_layout
    run = run_script(folder / "Project3.py", "--part", "cnn", "--quick", cwd=elsewhere,
                     env_path=block_torch(tmp_path / "blocked"))
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "--part cnn needs PyTorch" in run.stderr
