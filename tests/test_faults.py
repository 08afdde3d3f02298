"""Faults: damaged files, killed runs, full disks, closed pipes and odd interpreters. Each gives one
sentence (or nothing) and a defined exit status, loses nothing that was finished, and never shows a
traceback; the next run completes."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import (
    SCRIPT,
    P,
    block_torch,
    damage,
    fake_torch,
    grader_folder,
    leftovers,
    make_small_data,
    run_script,
)

# ---- results.json -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "damaged, found",
    [
        ('{"mlp_spec": {"val_accuracy": 0.9', "Expecting ',' delimiter"),  # cut short
        ("[]", "expected an object of objects"),
        ("null", "expected an object of objects"),
        ('{"seconds": 5}', "expected an object of objects"),
        ('{"mlp_spec": NaN}', "NaN where a number belongs"),
        ('{"mlp_spec": {"history": {"val_acc": [Infinity]}}}', "Infinity where a number belongs"),
        ('{"seconds": {"2.5": "slow"}}', "expected seconds to map sections to numbers"),
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
    assert "results.json is not a readable results file" in captured.err
    assert "epoch" not in captured.out


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
    assert f"{path} is not a readable results file" in captured.err
    assert "Permission denied" in captured.err
    assert captured.err.count("\n") == 1 and "epoch" not in captured.out


def test_fewer_than_three_training_images_are_refused_before_training(tmp_path, capsys):
    data = make_small_data(tmp_path / "data", n_train=2)
    assert P.main(["--quick", "--data", str(data), "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert "the training split holds 2 images; 2.5 and 3.3 need at least 3." in captured.err
    assert "epoch" not in captured.out


def test_results_json_is_standard_json_without_nan(tmp_path):
    (tmp_path / "figures").mkdir()
    P.write_results(tmp_path, {"mlp_templates": {"rms_blank": P.rms(np.zeros((64, 0)))}})
    text = (tmp_path / "figures" / "results.json").read_text()
    assert json.loads(text) == {"mlp_templates": {"rms_blank": None}}
    with pytest.raises(ValueError):  # a NaN would be a bug: refused, never written
        P.write_results(tmp_path, {"bad": {"value": float("nan")}})
    assert "NaN" not in (tmp_path / "figures" / "results.json").read_text()


# ---- Weights ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["truncated", "shape", "nan", "missing_array", "code", "folder"])
def test_damaged_weights_for_2_7_are_one_sentence_naming_the_run_that_makes_them(
    tmp_path, capsys, case
):
    """2.7 and 2.8 read the weights of an earlier run of this script; tools/evaluate.py reads
    weights from elsewhere with more care (tests/test_evaluate.py)."""
    data = make_small_data(tmp_path / "data")
    weights = tmp_path / "out" / "weights"
    weights.mkdir(parents=True)
    P.MLP(seed=0).save(weights / "mlp.npz")
    damage(weights, f"mlp_{case}")
    args = ["--section", "2.7", "--data", str(data), "--out", str(tmp_path / "out")]
    assert P.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mlp.npz" in err and "Traceback" not in err
    assert "run `python Project3.py --section 2.6`" in err
    assert not (weights / "pwned").exists()  # nothing in the file was run


# ---- Writes that fail ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_full_disk_after_training_is_one_sentence_and_keeps_the_finished_sections(
    tmp_path, monkeypatch, capsys
):
    data = make_small_data(tmp_path / "data")
    out = tmp_path / "out"
    real_savefig = P.Figure.savefig

    def savefig_on_a_full_disk(fig, path, **kwargs):
        if "deskew" in str(path):  # 2.6's first figure, after 2.5 is done
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_savefig(fig, path, **kwargs)

    monkeypatch.setattr(P.Figure, "savefig", savefig_on_a_full_disk)
    assert P.main(["--part", "mlp", "--quick", "--data", str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "deskew.pdf (No space left on device)" in err
    assert "; sections 2.3, 2.5 finished, their files kept." in err
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


# ---- Killed runs -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_temporary_left_by_a_killed_run_costs_the_next_run_nothing(tmp_path):
    folder, elsewhere = grader_folder(tmp_path)
    figures = folder / "quick" / "figures"
    figures.mkdir(parents=True)
    (figures / "mlp_study.tmp").write_bytes(b"half a figure")  # killed while writing it
    run = run_script(
        folder / "Project3.py",
        "--section",
        "2.5",
        "--quick",
        cwd=elsewhere,
        blocked=block_torch(tmp_path / "blocked"),
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert (figures / "mlp_study.png").stat().st_size > 1000
    assert not leftovers(folder)


@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGKILL"])
def test_a_run_killed_midway_leaves_whole_files_and_the_next_run_completes(tmp_path, signame):
    """Killed while 2.6 trains: 2.5's files are whole and agree; 2.6 is marked unfinished, so 2.7
    refuses its weights; the lock that a killed run cannot remove makes the next run refuse with
    one sentence naming it, and once it is deleted the next run completes."""
    folder, elsewhere = grader_folder(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(block_torch(tmp_path / "blocked")))
    command = [sys.executable, str(folder / "Project3.py"), "--part", "mlp", "--quick"]
    first = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr  # a whole run's files, which the next overwrites
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
    results = json.loads((out / "figures" / "results.json").read_text())
    assert P.MLP.load(out / "weights" / "mlp_spec.npz", "2.5").run_id == results["mlp_spec"]["run"]
    assert list(results["unfinished"]) == ["2.6"]
    lock = out / "figures" / ".run.lock"
    again = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert again.returncode == 2 and f"({lock} exists)" in again.stderr
    assert again.stderr.count("\n") == 1 and "delete that file" in again.stderr
    lock.unlink()
    for section in ("2.7", "2.8"):  # each reads 2.6's weights, from the first run
        refused = subprocess.run(
            [*command[:2], "--section", section, "--quick"],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
        )
        assert refused.returncode == 2 and "section 2.6 did not finish" in refused.stderr
    again = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "figures" / "results.json").read_text())["unfinished"] == {}


def with_default_sigint():
    """Ctrl-C as in a terminal: where the tests run as a background job (`pytest &` in a script),
    SIGINT is ignored, and the child would inherit that; it gets the default handling back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_exits_130_with_one_line_and_leaves_no_temporary(tmp_path):
    folder, _ = grader_folder(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(block_torch(tmp_path / "blocked")))
    # Not --quick: its whole Part 1 takes about a second, so that on a busy machine it could end
    # before the signal arrives; the full settings leave seconds of training after the line below.
    command = [sys.executable, str(folder / "Project3.py"), "--part", "mlp"]
    run = subprocess.Popen(
        command,
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=with_default_sigint if os.name == "posix" else None,
    )
    for line in run.stdout:
        if "2.5, 600 images] epoch 1/" in line:  # the first run's figures and weights are done
            run.send_signal(signal.SIGINT)
            break
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130
    assert err.strip().count("\n") == 0 and "interrupted" in err and "Traceback" not in err
    assert not leftovers(folder)


# ---- Output and interpreters --------------------------------------------------------------------


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("section, key", [("3.3", "cnn_spec")])  # 2.8 reads the seed
def test_a_section_built_on_a_run_with_another_seed_says_which_seed(
    quick_run, tmp_path, capsys, section, key
):
    folder, _ = quick_run
    shutil.copytree(folder / "quick", tmp_path / "out")
    data = str(folder / "Project3_Data")
    args = ["--section", section, "--quick", "--data", data, "--out", str(tmp_path / "out")]
    assert P.main([*args, "--seed", "1"]) == 2
    captured = capsys.readouterr()
    assert "which ran with --seed 0, not 1: pass --seed 0, or rerun section 3.2." in captured.err
    assert "epoch" not in captured.out
    if section == "3.3" and P.torch is None:
        return
    assert P.main(args) == 0  # with the seed of the run it builds on
