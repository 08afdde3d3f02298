"""Shared helpers: Project3.py imported from the repository root, small data folders, a grader's
layout (the script alone beside its data), and running the script as a grader would."""

import importlib.util
import io
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
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


class Payload:
    """Unpickled, it creates a file: proof that a loader ran code from a weight file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def npz_claiming(path, arrays, name, shape):
    """An .npz like np.savez writes, except that member `name` claims `shape` in its .npy header
    while it holds a few bytes only."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape!r}, }}"
    header += " " * (63 - len(header) % 64) + "\n"
    crafted = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in arrays.items():
            member = io.BytesIO()
            np.save(member, array)
            archive.writestr(f"{key}.npy", crafted if key == name else member.getvalue())


def damage(weights, case):
    """Damage the weights in the folder weights in one way; returns the file the error must name."""
    mlp = weights / "mlp.npz"
    cnn = weights / "cnn.npz"
    params = dict(np.load(mlp))
    state = dict(np.load(cnn)) if case.startswith("cnn") else None
    if case == "mlp_truncated":
        mlp.write_bytes(mlp.read_bytes()[:1000])
    elif case == "mlp_shape":
        np.savez(mlp, **dict(params, W1=np.zeros((3, 3), np.float32)))
    elif case == "mlp_nan":
        np.savez(mlp, **dict(params, b2=np.full(10, np.nan, np.float32)))
    elif case == "mlp_missing_array":
        np.savez(mlp, **{k: v for k, v in params.items() if k != "W2"})
    elif case == "mlp_bad_crc":  # the zip's end record intact, one byte inside W1 changed
        data = bytearray(mlp.read_bytes())
        data[len(data) // 3] ^= 0xFF
        mlp.write_bytes(bytes(data))
    elif case == "mlp_huge_header":  # W1 claims 10^9 x 784 floats: 3 TB
        npz_claiming(mlp, params, "W1", (10**9, 784))
    elif case == "mlp_deskew_not_a_flag":
        np.savez(mlp, **dict(params, deskew=np.array([1, 1])))
    elif case == "mlp_folder":
        mlp.unlink()
        mlp.mkdir()
    elif case == "mlp_code":  # a pickle that runs code if it is ever unpickled
        mlp.write_bytes(pickle.dumps(Payload(weights / "pwned"), protocol=2))
    elif case == "cnn_truncated":
        cnn.write_bytes(cnn.read_bytes()[:2000])
    elif case == "cnn_not_weights":
        cnn.write_bytes(b"PK\x03\x04 not a zip of arrays")
    elif case == "cnn_nan":
        np.savez(cnn, **dict(state, **{"fc3.bias": np.full(10, np.nan, np.float32)}))
    elif case == "cnn_code":
        cnn.write_bytes(pickle.dumps(Payload(weights / "pwned"), protocol=2))
    elif case == "cnn_code_inside":  # the same pickle as an object array inside a real .npz
        payload = np.empty(1, dtype=object)
        payload[0] = Payload(weights / "pwned")
        np.savez(cnn, **dict(state, **{"fc3.bias": payload}))
    elif case == "cnn_old_format":  # the torch.save pickle of earlier versions, and no .npz
        cnn.unlink()
        (weights / "cnn.pt").write_bytes(pickle.dumps(Payload(weights / "pwned"), protocol=2))
        return "cnn.pt"
    return "mlp.npz" if case.startswith("mlp") else "cnn.npz"
