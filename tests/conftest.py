"""Shared helpers: import Project3.py from the repository root and make small data folders."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "Project3.py"
REAL_DATA = ROOT / "Project3_data"


def _import_project():
    spec = importlib.util.spec_from_file_location("Project3", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["Project3"] = module
    spec.loader.exec_module(module)
    return module


P = _import_project()


def write_split(folder, split, images, labels):
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"MNIST_{split}_images.npy", images)
    np.save(folder / f"MNIST_{split}_labels.npy", labels)


def make_small_data(folder, n_train=400, n_val=200, n_test=200, test=None):
    """A small copy of the real MNIST (uint8) in the assignment's layout.

    test: replaces the test split with these (images, labels) when given."""
    sizes = dict(train=n_train, val=n_val, test=n_test)
    for split, n in sizes.items():
        images = np.load(REAL_DATA / f"MNIST_{split}_images.npy", mmap_mode="r")[:n]
        labels = np.load(REAL_DATA / f"MNIST_{split}_labels.npy")[:n]
        if split == "test" and test is not None:
            images, labels = test
        write_split(folder, split, np.ascontiguousarray(images), labels)
    return folder


@pytest.fixture(scope="session")
def project():
    return P


@pytest.fixture()
def small_data(tmp_path):
    return make_small_data(tmp_path / "Project3_data")
