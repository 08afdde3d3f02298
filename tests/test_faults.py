"""Faults: damaged files, killed runs, full disks, closed pipes and odd interpreters. Each gives one
sentence (or nothing) and a defined exit status, loses nothing that was finished, and never shows a
traceback; the next run completes."""

import errno
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import (
    IMPORT_P,
    SCRIPT,
    P,
    block_torch,
    fake_torch,
    grader_folder,
    leftovers,
    make_small_data,
    run_script,
)

# ---- results.json -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damaged, found",
    [
        ('{"mlp_spec": {"val_accuracy": 0.9', "is not valid JSON"),  # cut short
        ("[]", "expected an object, found list"),
        ("null", "expected an object, found NoneType"),
        ('{"seconds": 5}', "entry 'seconds' should be an object, found int"),
        ('{"mlp_spec": NaN}', "NaN is not standard JSON"),
    ],
)
def test_a_damaged_results_json_is_one_sentence_before_training(tmp_path, capsys, damaged, found):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "results.json").write_text(damaged)
    assert P.main(["--part", "mlp", "--quick", "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert found in captured.err and "delete it" in captured.err
    assert "epoch" not in captured.out and captured.err.count("\n") == 1
    assert (tmp_path / "figures" / "results.json").read_text() == damaged


def test_a_folder_where_results_json_belongs_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "figures" / "results.json").mkdir(parents=True)
    assert P.main(["--part", "mlp", "--quick", "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "results.json is not a file" in captured.err and "epoch" not in captured.out


def test_a_results_json_that_cannot_be_read_is_one_sentence(tmp_path, monkeypatch, capsys):
    """As a non-root user meets a results.json without read permission."""
    (tmp_path / "figures").mkdir()
    path = tmp_path / "figures" / "results.json"
    path.write_text("{}")
    real_read_text = Path.read_text

    def read_text_refusing(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text_refusing)
    assert P.main(["--part", "mlp", "--quick", "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert f"{path} cannot be read" in captured.err and "Permission denied" in captured.err
    assert captured.err.count("\n") == 1 and "epoch" not in captured.out


def test_fewer_than_three_training_images_are_refused_before_training(tmp_path, capsys):
    data = make_small_data(tmp_path / "data", n_train=2)
    assert P.main(["--quick", "--data", str(data), "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert "the training split holds 2 images; 2.5 and 3.3 need at least 3." in captured.err
    assert "epoch" not in captured.out


def test_results_json_is_standard_json_without_nan(tmp_path):
    (tmp_path / "figures").mkdir()
    P.record_results(tmp_path, {"mlp_templates": {"rms_blank": P.rms(np.zeros((64, 0)))}})
    text = (tmp_path / "figures" / "results.json").read_text()
    assert json.loads(text, parse_constant=P.refuse_constant) == {
        "mlp_templates": {"rms_blank": None}
    }
    with pytest.raises(ValueError):  # a NaN would be a bug: refused, never written
        P.record_results(tmp_path, {"bad": {"value": float("nan")}})
    assert "NaN" not in (tmp_path / "figures" / "results.json").read_text()


# ---- Weights ------------------------------------------------------------------------------------


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
    """Damage the weights of a quick run in one way; returns the file the error must name."""
    mlp = weights / "mlp.npz"
    cnn = weights / "cnn.npz"
    params = dict(np.load(mlp))
    state = dict(np.load(cnn))
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
    elif case == "mlp_folder":
        mlp.unlink()
        mlp.mkdir()
    elif case == "cnn_truncated":
        cnn.write_bytes(cnn.read_bytes()[:2000])
    elif case == "cnn_not_weights":
        cnn.write_bytes(b"PK\x03\x04 not a zip of arrays")
    elif case == "cnn_nan":
        np.savez(cnn, **dict(state, **{"fc3.bias": np.full(10, np.nan, np.float32)}))
    elif case == "cnn_code":  # a pickle that runs code if it is ever unpickled
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


WEIGHT_CASES = [
    "mlp_truncated",
    "mlp_shape",
    "mlp_nan",
    "mlp_missing_array",
    "mlp_bad_crc",
    "mlp_huge_header",
    "mlp_folder",
    "cnn_truncated",
    "cnn_not_weights",
    "cnn_nan",
    "cnn_code",
    "cnn_code_inside",
    "cnn_old_format",
]


@pytest.mark.parametrize("case", WEIGHT_CASES)
def test_damaged_weights_are_one_sentence_and_exit_2(quick_run, tmp_path, capsys, case):
    folder, _ = quick_run
    shutil.copytree(folder / "quick" / "weights", tmp_path / "weights")
    name = damage(tmp_path / "weights", case)
    data = str(folder / "Project3_Data")
    assert P.main(["--part", "eval", "--data", data, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and "Traceback" not in err
    assert not (tmp_path / "weights" / "pwned").exists()  # nothing in the file was run
    if case == "cnn_old_format":
        assert "--part cnn" in err and "tools/convert_weights.py" in err


def test_a_fifo_in_place_of_the_weights_is_refused_not_waited_on(quick_run, tmp_path):
    folder, _ = quick_run
    shutil.copytree(folder / "quick" / "weights", tmp_path / "weights")
    (tmp_path / "weights" / "mlp.npz").unlink()
    os.mkfifo(tmp_path / "weights" / "mlp.npz")
    data = folder / "Project3_Data"
    run = run_script(
        SCRIPT, "--part", "eval", "--data", data, "--out", tmp_path, cwd=tmp_path, timeout=60
    )
    assert run.returncode == 2 and "mlp.npz: not a regular file" in run.stderr


def test_a_weight_header_claiming_terabytes_is_refused_from_the_header(quick_run, tmp_path):
    folder, _ = quick_run
    shutil.copytree(folder / "quick" / "weights", tmp_path / "weights")
    damage(tmp_path / "weights", "mlp_huge_header")
    tracemalloc.start()
    with pytest.raises(P.UserError, match=r"expected W1 of shape \(64, 784\).*\(1000000000, 784\)"):
        P.MLP.load(tmp_path / "weights" / "mlp.npz")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20  # refused from the header: nothing allocated for the array


# ---- Writes that fail ---------------------------------------------------------------------------


def test_a_full_disk_after_training_is_one_sentence_and_keeps_the_finished_sections(
    tmp_path, monkeypatch, capsys
):
    data = make_small_data(tmp_path / "data")
    out = tmp_path / "out"
    real_savefig = P.plt.Figure.savefig

    def savefig_on_a_full_disk(fig, path, **kwargs):
        if "mlp_best_training" in str(path):  # 2.6's first figure, after 2.5 is done
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_savefig(fig, path, **kwargs)

    monkeypatch.setattr(P.plt.Figure, "savefig", savefig_on_a_full_disk)
    assert P.main(["--part", "mlp", "--quick", "--data", str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "mlp_best_training.pdf (No space left on device)" in err
    assert f"sections 2.5 finished and their files are kept in {out}" in err
    results = json.loads((out / "figures" / "results.json").read_text())
    assert "mlp_spec" in results and "mlp_best" not in results  # 2.5's results were kept
    assert (out / "weights" / "mlp_spec.npz").is_file()
    assert not leftovers(out)


def test_ctrl_c_while_weights_are_written_keeps_the_old_file_and_no_temporary(
    tmp_path, monkeypatch, capsys
):
    data = make_small_data(tmp_path / "data")
    out = tmp_path / "out"
    (out / "weights").mkdir(parents=True)
    (out / "weights" / "mlp_spec.npz").write_bytes(b"old weights")

    def interrupted_savez(file, **arrays):
        file.write(b"half of the new weights")
        raise KeyboardInterrupt

    monkeypatch.setattr(P.np, "savez", interrupted_savez)
    assert P.main(["--section", "2.5", "--quick", "--data", str(data), "--out", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert (out / "weights" / "mlp_spec.npz").read_bytes() == b"old weights"
    assert not leftovers(out)


def test_write_whole_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")

    def failing(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        P.write_whole(target, failing)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


# ---- Killed runs, locks and concurrent runs -----------------------------------------------------


RECORD = (
    IMPORT_P
    + """
import time
out, tag = pathlib.Path(sys.argv[2]), sys.argv[3]
(out / "figures" / tag).touch()
deadline = time.monotonic() + 60
while len(list((out / "figures").glob("ready*"))) < 2:  # start together, so that the runs overlap
    assert time.monotonic() < deadline
for i in range(60):
    P.record_results(out, {f"{tag}{i}": {"values": list(range(500))}})
    P.record_results(out, {"shared": {tag + str(i): i}}, merged=["shared"])
"""
)


def test_two_runs_recording_results_at_once_both_land(tmp_path):
    (tmp_path / "figures").mkdir()
    env = dict(os.environ, PYTHONPATH=str(block_torch(tmp_path / "blocked")))  # a faster start
    runs = [
        subprocess.Popen([sys.executable, "-c", RECORD, str(SCRIPT), str(tmp_path), tag], env=env)
        for tag in ("ready_a", "ready_b")
    ]
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    results = json.loads((tmp_path / "figures" / "results.json").read_text())
    keys = {f"ready_{tag}{i}" for tag in "ab" for i in range(60)}
    assert set(results) == keys | {"shared"} and set(results["shared"]) == keys  # none lost
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "ready_a",
        "ready_b",
        "results.json",
    ]


def age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_lock_and_temporaries_left_by_a_killed_run_cost_the_next_run_nothing(tmp_path):
    folder, elsewhere = grader_folder(tmp_path)
    figures = folder / "quick" / "figures"
    figures.mkdir(parents=True)
    lock = figures / ".results.json.lock"
    lock.touch()
    age(lock, 30)  # held 30 s: its run was killed during an update, which takes milliseconds
    stale_tmp = figures / ".mlp_study.png.123.456.tmp"
    stale_tmp.write_bytes(b"half a figure")
    age(stale_tmp, 3600)
    run = run_script(
        folder / "Project3.py",
        "--part",
        "mlp",
        "--quick",
        cwd=elsewhere,
        blocked=block_torch(tmp_path / "blocked"),
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert f"note: removed {lock}, left by a run that was stopped." in run.stderr
    results = json.loads((figures / "results.json").read_text())
    assert {"mlp_spec", "mlp_best", "mlp_confusion", "mlp_templates"} <= set(results)
    assert not leftovers(folder)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGKILL"])
def test_a_run_killed_midway_leaves_whole_files_and_the_next_run_completes(tmp_path, signame):
    folder, elsewhere = grader_folder(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(block_torch(tmp_path / "blocked")))
    command = [sys.executable, str(folder / "Project3.py"), "--part", "mlp", "--quick"]
    run = subprocess.Popen(
        command, cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in run.stdout:
        if "[2.6] epoch 1/" in line:  # 2.5's files are written; 2.6 is training
            run.send_signal(getattr(signal, signame))
            break
    run.communicate(timeout=60)
    assert run.returncode == -getattr(signal, signame)  # the system's status for that signal
    out = folder / "quick"
    assert "mlp_spec" in json.loads((out / "figures" / "results.json").read_text())
    P.MLP.load(out / "weights" / "mlp_spec.npz")  # whole
    again = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr


def test_concurrent_runs_check_their_output_folder_without_tripping_on_each_other(tmp_path):
    code = IMPORT_P + "for _ in range(300):\n    P.check_writable(pathlib.Path(sys.argv[2]))\n"
    env = dict(os.environ, PYTHONPATH=str(block_torch(tmp_path / "blocked")))
    runs = [
        subprocess.Popen([sys.executable, "-c", code, str(SCRIPT), str(tmp_path)], env=env)
        for _ in range(2)
    ]
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked", "figures", "weights"]
    assert not list((tmp_path / "figures").iterdir()) and not list((tmp_path / "weights").iterdir())


def test_ctrl_c_exits_130_with_one_line_and_leaves_no_temporary(tmp_path):
    folder, _ = grader_folder(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(block_torch(tmp_path / "blocked")))
    command = [sys.executable, str(folder / "Project3.py"), "--part", "mlp", "--quick"]
    run = subprocess.Popen(
        command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    for line in run.stdout:
        if "2.5, 600 images] epoch 1/" in line:  # the first run's figures and weights are next
            run.send_signal(signal.SIGINT)
            break
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130
    assert err.strip().count("\n") == 0 and "interrupted" in err and "Traceback" not in err
    assert not leftovers(folder / "quick")


def test_ctrl_c_while_torch_is_imported_is_one_line_too(tmp_path):
    slow = fake_torch(tmp_path / "slow", "import time\ntime.sleep(30)\n")  # a slow import
    run = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--help"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(slow)),
    )
    time.sleep(2)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=30)
    assert run.returncode == 130
    assert err.strip() == "Project3.py: interrupted before the first section; nothing was written."


# ---- Output and interpreters --------------------------------------------------------------------


def test_a_closed_stdout_ends_the_printing_not_the_run(tmp_path):
    """`python Project3.py --quick | head -1`: the run goes on silently and finishes its files."""
    folder, elsewhere = grader_folder(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(block_torch(tmp_path / "blocked")))
    command = [sys.executable, str(folder / "Project3.py"), "--part", "mlp", "--quick"]
    run = subprocess.Popen(
        command, cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    run.stdout.readline()
    run.stdout.close()  # as `head -1` does
    err = run.stderr.read().decode()
    assert run.wait(timeout=120) == 0
    assert err == ""  # no BrokenPipeError, no traceback
    assert "mlp_templates" in json.loads((folder / "quick/figures/results.json").read_text())


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_stdout_ends_the_printing_not_the_run(tmp_path):
    folder, elsewhere = grader_folder(tmp_path)
    with open("/dev/full", "w") as full:
        run = run_script(
            folder / "Project3.py",
            "--section",
            "2.5",
            "--quick",
            cwd=elsewhere,
            blocked=block_torch(tmp_path / "blocked"),
            stdout=full,
        )
    assert run.returncode == 0 and run.stderr == ""


def test_python_oo_strips_the_docstrings_and_the_script_still_runs(tmp_path):
    folder, elsewhere = grader_folder(tmp_path)
    blocked = block_torch(tmp_path / "blocked")
    run = run_script(
        folder / "Project3.py", "--help", cwd=elsewhere, blocked=blocked, python_flags=["-OO"]
    )
    assert run.returncode == 0 and "--quick" in run.stdout
    run = run_script(
        folder / "Project3.py",
        "--section",
        "2.5",
        "--quick",
        cwd=elsewhere,
        blocked=blocked,
        python_flags=["-OO"],
    )
    assert run.returncode == 0, run.stderr


def test_a_torch_that_fails_to_import_in_any_way_means_part_2_is_unavailable(tmp_path):
    folder, elsewhere = grader_folder(tmp_path)
    broken = fake_torch(tmp_path / "broken", 'raise RuntimeError("CUDA driver mismatch")\n')
    run = run_script(
        folder / "Project3.py", "--part", "mlp", "--quick", cwd=elsewhere, blocked=broken
    )
    assert run.returncode == 0, run.stderr
    run = run_script(
        folder / "Project3.py", "--part", "cnn", "--quick", cwd=elsewhere, blocked=broken
    )
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "(RuntimeError: CUDA driver mismatch)" in run.stderr


def test_a_missing_numpy_or_matplotlib_is_one_sentence(tmp_path):
    broken = tmp_path / "broken"
    (broken / "matplotlib").mkdir(parents=True)
    (broken / "matplotlib" / "__init__.py").write_text(
        'raise ModuleNotFoundError("No module named \'matplotlib\'", name="matplotlib")\n'
    )
    run = run_script(SCRIPT, "--quick", cwd=tmp_path, blocked=broken)
    assert run.returncode == 2
    assert run.stderr == (
        "Project3.py: error: numpy and matplotlib are needed (No module named 'matplotlib').\n"
    )


@pytest.mark.parametrize("section, key", [("2.8", "mlp_spec"), ("3.3", "cnn_spec")])
def test_a_section_built_on_a_run_with_another_seed_says_which_seed(
    quick_run, tmp_path, capsys, section, key
):
    folder, _ = quick_run
    shutil.copytree(folder / "quick", tmp_path / "out")
    data = str(folder / "Project3_Data")
    args = ["--section", section, "--quick", "--data", data, "--out", str(tmp_path / "out")]
    assert P.main([*args, "--seed", "1"]) == 2
    captured = capsys.readouterr()
    assert "which ran with --seed 0, not 1: pass --seed 0." in captured.err
    assert "epoch" not in captured.out
    if section == "3.3" and P.torch is None:
        return
    assert P.main(args) == 0  # with the seed of the run it builds on
