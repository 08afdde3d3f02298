"""Outputs that stay together: concurrent runs, interruptions at every write, Ctrl-C during the
imports, the caller's matplotlib settings and stdout, and the messages for files that are not what
they claim to be."""

import json
import os
import shutil
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

from conftest import (
    SCRIPT,
    P,
    block_torch,
    fake_torch,
    grader_folder,
    leftovers,
    make_small_data,
    run_script,
)

QUICK_MLP = ["--part", "mlp", "--quick"]


def run_args(data, out, *more):
    return [*more, "--quick", "--data", str(data), "--out", str(out)]


# ---- Two runs into one folder ---------------------------------------------------------------


@pytest.mark.slow
def test_a_second_run_into_a_folder_being_written_refuses_at_its_start(tmp_path):
    """Run A (Part 1, full settings) is training when run B (Part 2) starts into the same folder:
    B refuses in one sentence before any training, and A's records are all there at its end."""
    data = make_small_data(tmp_path / "data")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(block_torch(tmp_path / "blocked")))
    command = [sys.executable, str(SCRIPT), "--data", str(data), "--out", str(out)]
    first = subprocess.Popen(
        [*command, "--part", "mlp"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in first.stdout:
            if line.startswith("[2.5, 200 images] epoch"):  # A holds the folder and is training
                break
        second = subprocess.run(
            [*command, "--part", "mlp", "--seed", "1"], capture_output=True, text=True, env=env
        )
        assert second.returncode == 2 and second.stderr.count("\n") == 1
        assert f"another run is writing into {out}" in second.stderr
        assert "epoch" not in second.stdout
    finally:
        first.kill()
        first.communicate()


def test_a_lock_left_by_a_killed_run_is_named_and_nothing_is_written(tmp_path, capsys):
    data = make_small_data(tmp_path / "data")
    out = tmp_path / "out"
    assert P.main(run_args(data, out, "--section", "2.3")) == 0
    before = (out / "figures" / "results.json").read_bytes()
    lock = out / "figures" / ".run.lock"
    lock.touch()
    assert P.main(run_args(data, out, "--section", "2.3")) == 2
    captured = capsys.readouterr()
    assert f"({lock} exists)" in captured.err and "delete that file" in captured.err
    assert (out / "figures" / "results.json").read_bytes() == before and lock.exists()


@pytest.mark.parametrize("failure", [KeyboardInterrupt, P.UserError("disk full.")])
def test_a_run_removes_its_lock_however_it_ends(tmp_path, monkeypatch, failure):
    data = make_small_data(tmp_path / "data")
    out = tmp_path / "out"

    def fail(data, args):
        raise failure

    monkeypatch.setitem(P.SECTIONS, "2.3", fail)
    assert P.main(run_args(data, out, "--section", "2.3")) in (2, 130)
    assert leftovers(out) == []


# ---- Interruptions at every write ------------------------------------------------------------


def interrupt_at_write(monkeypatch, k):
    """Make the k-th whole-file write from now on raise KeyboardInterrupt before it writes."""
    write_whole = P.write_whole
    count = {"writes": 0}

    def counted(path, write, *args, **kwargs):
        count["writes"] += 1
        if count["writes"] == k:
            raise KeyboardInterrupt
        return write_whole(path, write, *args, **kwargs)

    monkeypatch.setattr(P, "write_whole", counted)
    return count


def readers_agree_or_refuse(data, out, capsys):
    """2.7 and 2.8 read what 2.5 and 2.6 left: each either succeeds, its record naming the runs of
    the weights it read, which are those of their sections' records, or refuses in one sentence
    that names the section to rerun."""
    for section in ("2.7", "2.8"):
        code = P.main(run_args(data, out, "--section", section))
        err = capsys.readouterr().err
        results = json.loads((out / "figures" / "results.json").read_text())
        if code == 2:
            assert err.count("\n") == 1 and "--section 2." in err and "first" in err
            continue
        assert code == 0, err
        weights = {"mlp_best": "mlp.npz"}  # 2.7's
        if section == "2.8":
            weights["mlp_spec"] = "mlp_spec.npz"
        for key, file in weights.items():
            run = str(np.load(out / "weights" / file)["run"])
            assert run == results[key]["run"]
            if section == "2.8":
                assert results["mlp_templates"][key]["run"] == run
        if section == "2.7":
            assert results["mlp_confusion"]["run"] == results["mlp_best"]["run"]


@pytest.mark.slow
@pytest.mark.parametrize("section, writes", [("2.5", 5), ("2.6", 5)])
def test_an_interruption_at_any_write_leaves_outputs_together_or_recognisably_apart(
    tmp_path, monkeypatch, capsys, section, writes
):
    """2.5 writes the unfinished mark, its weights, its figure (PDF, PNG) and its records; 2.6 the
    same. Ctrl-C before each of these writes in turn, over a whole earlier run's files."""
    data = make_small_data(tmp_path / "data", n_train=300, n_val=100, n_test=100)
    whole = tmp_path / "whole"
    assert P.main(run_args(data, whole, *QUICK_MLP[:2])) == 0
    for k in range(1, writes + 1):
        out = tmp_path / f"out{k}"
        shutil.copytree(whole, out)
        count = interrupt_at_write(monkeypatch, k)
        assert P.main(run_args(data, out, "--section", section, "--seed", "1")) == 130
        monkeypatch.undo()
        assert "interrupted" in capsys.readouterr().err
        assert count["writes"] == k and leftovers(out) == []
        readers_agree_or_refuse(data, out, capsys)
    assert P.main(run_args(data, out, "--section", section, "--seed", "1")) == 0
    readers_agree_or_refuse(data, out, capsys)


@pytest.mark.slow
def test_weights_of_another_run_than_their_record_are_refused(tmp_path, capsys):
    data = make_small_data(tmp_path / "data", n_train=300, n_val=100, n_test=100)
    out, other = tmp_path / "out", tmp_path / "other"
    for folder in (out, other):
        assert P.main(run_args(data, folder, *QUICK_MLP[:2])) == 0
    shutil.copy(other / "weights" / "mlp.npz", out / "weights" / "mlp.npz")
    for section in ("2.7", "2.8"):
        assert P.main(run_args(data, out, "--section", section)) == 2
        err = capsys.readouterr().err
        assert "the weights of section 2.6" in err and "--section 2.6` first" in err


# ---- Ctrl-C while importing ------------------------------------------------------------------


def test_ctrl_c_while_torch_imports_is_one_line_and_status_130(tmp_path):
    folder = fake_torch(tmp_path / "slow", "raise KeyboardInterrupt\n")
    run = run_script(SCRIPT, "--quick", cwd=tmp_path, blocked=folder)
    assert run.returncode == 130 and run.stderr == "Project3.py: interrupted.\n"


# ---- The caller's matplotlib settings and stdout ------------------------------------------------


@pytest.mark.slow
def test_figures_are_the_same_whatever_the_callers_matplotlib_settings(tmp_path):
    """A session that has set its own style (ggplot, usetex) gets the same figure files as a fresh
    one, and its settings back; stdout, dropped by a broken pipe inside the run, comes back too."""
    data = make_small_data(tmp_path / "data", n_train=300, n_val=100, n_test=100)
    assert P.main(run_args(data, tmp_path / "plain", "--section", "2.5")) == 0

    class BrokenPipe:
        encoding = "utf-8"

        def write(self, text):
            raise BrokenPipeError

        def flush(self):
            pass

    caller_stdout = BrokenPipe()
    with matplotlib.style.context("ggplot"), matplotlib.rc_context({"text.usetex": True}):
        before = dict(matplotlib.rcParams)
        saved, sys.stdout = sys.stdout, caller_stdout
        try:
            code = P.main(run_args(data, tmp_path / "styled", "--section", "2.5"))
            stdout_after = sys.stdout
        finally:
            sys.stdout = saved
        assert dict(matplotlib.rcParams) == before
    assert code == 0 and stdout_after is caller_stdout
    for name in ("mlp_study.png", "mlp_study.pdf"):
        plain = (tmp_path / "plain" / "figures" / name).read_bytes()
        assert (tmp_path / "styled" / "figures" / name).read_bytes() == plain


@pytest.mark.slow
def test_a_matplotlibrc_with_usetex_in_the_working_folder_changes_nothing(tmp_path):
    folder, elsewhere = grader_folder(tmp_path)
    (elsewhere / "matplotlibrc").write_text("text.usetex: True\n")
    run = run_script(folder / "Project3.py", "--section", "2.3", "--quick", cwd=elsewhere)
    assert run.returncode == 0, run.stderr
    run = run_script(
        folder / "Project3.py", *QUICK_MLP, cwd=elsewhere, blocked=block_torch(tmp_path / "b")
    )
    assert run.returncode == 0 and "Traceback" not in run.stderr


def test_an_mplbackend_matplotlib_refuses_is_one_sentence(tmp_path):
    env = dict(os.environ, MPLBACKEND="nonsense")
    command = [sys.executable, str(SCRIPT), "--quick"]
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "matplotlib refuses to start; if MPLBACKEND is set, unset it" in run.stderr


# ---- Files that are not what they claim to be ---------------------------------------------------


def test_a_csv_named_like_the_labels_is_no_npy_file_and_no_advice_to_unpickle(tmp_path, capsys):
    data = make_small_data(tmp_path / "data")
    (data / "MNIST_test_labels.npy").write_text("7,2,1,0\n4,1,4,9\n")
    assert P.main(run_args(data, tmp_path / "out", "--section", "2.3")) == 2
    err = capsys.readouterr().err
    assert (
        "MNIST_test_labels.npy: expected integer labels saved by numpy.save, found another kind"
        in err
    )
    assert "pickle" not in err


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_named_like_a_data_file_is_refused_not_waited_on(tmp_path):
    data = make_small_data(tmp_path / "data")
    (data / "MNIST_val_images.npy").unlink()
    os.mkfifo(data / "MNIST_val_images.npy")
    run = run_script(
        SCRIPT, *run_args(data, tmp_path / "out", "--section", "2.3"), cwd=tmp_path, timeout=60
    )
    assert run.returncode == 2 and "not a regular file (a folder, FIFO or device)" in run.stderr
