"""Shared helpers: Project3.py imported from the repository root, small data folders, a grader's
layout (the script alone beside its data), and running the script as a grader would."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "Project3.py"
REAL_DATA = ROOT / "Project3_data"


def import_path(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


P = import_path("Project3", SCRIPT)
# The first lines of a `python -c` program run with Project3.py's path as sys.argv[1]: they import
# it as P, without the tests' sys.path.
IMPORT_P = (
    "import sys, pathlib, importlib.util as u\n"
    "s = u.spec_from_file_location('P', sys.argv[1])\n"
    "P = u.module_from_spec(s)\n"
    "s.loader.exec_module(P)\n"
)


def write_split(folder, split, images, labels):
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"MNIST_{split}_images.npy", images)
    np.save(folder / f"MNIST_{split}_labels.npy", labels)


def make_small_data(folder, n_train=600, n_val=300, n_test=300, test=None, as_float=False):
    """A small copy of the real MNIST in the assignment's layout: uint8, or float32 in [0, 1] with
    as_float. test: replaces the test split with these (images, labels) when given."""
    for split, n in {"train": n_train, "val": n_val, "test": n_test}.items():
        images = np.load(REAL_DATA / f"MNIST_{split}_images.npy", mmap_mode="r")[:n]
        labels = np.load(REAL_DATA / f"MNIST_{split}_labels.npy")[:n]
        images = images.astype(np.float32) / 255 if as_float else np.ascontiguousarray(images)
        if split == "test" and test is not None:
            images, labels = test
        write_split(folder, split, images, labels)
    return folder


def fake_torch(folder, body):
    """A folder which, first on PYTHONPATH, replaces torch by a package whose __init__ is body."""
    (folder / "torch").mkdir(parents=True, exist_ok=True)
    (folder / "torch" / "__init__.py").write_text(body)
    return folder


def block_torch(folder):
    """A folder which, first on PYTHONPATH, makes `import torch` fail as where it is missing."""
    message = "No module named 'torch' (blocked by the test)"
    return fake_torch(folder, f'raise ModuleNotFoundError("{message}", name="torch")\n')


def run_script(script, *args, cwd, blocked=None, timeout=300, python_flags=(), stdout=PIPE):
    """Run a script as a grader would; blocked: a folder to put first on PYTHONPATH."""
    env = dict(os.environ, **({"PYTHONPATH": str(blocked)} if blocked else {}))
    command = [sys.executable, *python_flags, str(script), *map(str, args)]
    return subprocess.run(
        command, cwd=cwd, env=env, stdout=stdout, stderr=PIPE, text=True, timeout=timeout
    )


def grader_folder(base):
    """Project3.py alone beside Project3_Data (the other spelling) holding float32 images in
    [0, 1], and another folder to start it from."""
    folder = base / "submission"
    folder.mkdir(parents=True)
    shutil.copy(SCRIPT, folder / "Project3.py")
    make_small_data(folder / "Project3_Data", as_float=True)
    (base / "elsewhere").mkdir()
    return folder, base / "elsewhere"


def leftovers(folder):
    """Temporaries and locks under folder: a finished or interrupted run leaves none."""
    return [p for p in Path(folder).rglob("*") if p.name.endswith((".tmp", ".lock", ".takeover"))]


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """The grader's quick run with torch, once per session: `python Project3.py --quick` in a
    grader's layout, started from another folder. Returns (folder, completed process)."""
    if P.torch is None:
        pytest.skip("needs torch")
    folder, elsewhere = grader_folder(tmp_path_factory.mktemp("quick"))
    run = run_script(folder / "Project3.py", "--quick", cwd=elsewhere)
    assert run.returncode == 0, run.stderr
    return folder, run


@pytest.fixture()
def small_data(tmp_path):
    return make_small_data(tmp_path / "Project3_data")
