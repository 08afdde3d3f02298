"""The command line as a grader uses it, and what it guarantees: the grader's run, sections on their
own, the import rule, clear errors for bad options and damaged files, nothing half-written."""
import ast
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import P, SCRIPT, block_torch, grader_folder, make_small_data, run_script

ALLOWED = {"numpy", "matplotlib", "time", "torch", "argparse", "json", "pathlib", "sys"}
FIGURES = ("mlp_study", "mlp_best_training", "mlp_confusion", "mlp_mistakes", "mlp_templates")


def summary_lines(stdout):
    return [line for line in stdout.splitlines() if "test accuracy" in line]


def test_project3_imports_only_what_the_assignment_allows():
    tree = ast.parse(SCRIPT.read_text())
    imported = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == ALLOWED
    guarded = [node for node in tree.body if isinstance(node, ast.Try)]  # torch: at the top, inside a guard
    assert any(isinstance(n, ast.Import) and n.names[0].name == "torch" for t in guarded for n in t.body)


def test_the_graders_run_without_torch_does_part_1_and_says_part_2_needs_torch(tmp_path):
    folder, elsewhere = grader_folder(tmp_path)
    blocked = block_torch(tmp_path / "blocked")
    run = run_script(folder / "Project3.py", "--quick", cwd=elsewhere, blocked=blocked)
    assert run.returncode == 0, run.stderr
    out = folder / "quick"
    for name in FIGURES:
        assert (out / "figures" / f"{name}.pdf").stat().st_size > 1000 and (out / "figures" / f"{name}.png").is_file()
    results = json.loads((out / "figures" / "results.json").read_text())
    assert results["mlp_best"]["test_n"] == 300 and np.array(results["mlp_confusion"]["matrix"]).sum() == 300
    assert set(results["seconds"]) == {"2.5", "2.6", "2.7", "2.8"}
    lines = summary_lines(run.stdout)
    assert len(lines) == 2 and "extra credit" in lines[1]
    assert "Part 2 (sections 3.1-3.4) was skipped: it needs PyTorch" in run.stdout

    run = run_script(folder / "Project3.py", "--part", "eval", "--quick", cwd=elsewhere, blocked=blocked)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {
        "mlp": dict(accuracy=round(results["mlp_best"]["test_accuracy"], 4), n=300)}

    if P.torch is not None:  # a saved CNN beside it, but no torch to run it
        P.save_cnn(P.ConvNet(), out / "weights" / "cnn.npz")
        run = run_script(folder / "Project3.py", "--part", "eval", "--quick", cwd=elsewhere, blocked=blocked)
        assert run.returncode == 0 and "not evaluated: PyTorch is not installed" in run.stderr
    run = run_script(folder / "Project3.py", "--part", "cnn", "--quick", cwd=elsewhere, blocked=blocked)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "--part cnn needs PyTorch" in run.stderr


def test_the_graders_quick_run_does_every_section_and_ends_with_the_summary(quick_run):
    folder, run = quick_run
    out = folder / "quick"
    for name in FIGURES + ("cnn_study", "cnn_best_training", "cnn_confusion", "cnn_mistakes"):
        assert (out / "figures" / f"{name}.pdf").is_file() and (out / "figures" / f"{name}.png").is_file()
    assert sorted(p.name for p in (out / "weights").iterdir()) == ["cnn.npz", "cnn_spec.npz", "mlp.npz", "mlp_spec.npz"]
    results = json.loads((out / "figures" / "results.json").read_text())
    assert set(results["seconds"]) == {"2.5", "2.6", "2.7", "2.8", "3.1", "3.3", "3.4"}
    assert results["cnn_architecture"]["total_params"] == 44426
    lines = summary_lines(run.stdout)
    assert len(lines) == 4 and sum("extra credit" in line for line in lines) == 2
    assert f"{100 * results['cnn_best']['test_accuracy']:.2f} %" in lines[3]
    assert "Done in" in run.stdout and f"Figures in {out / 'figures'}" in run.stdout
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*lock"))

    run = run_script(folder / "Project3.py", "--part", "eval", "--quick", cwd=folder)
    last = json.loads(run.stdout.strip().splitlines()[-1])
    assert last["cnn"] == dict(accuracy=round(results["cnn_best"]["test_accuracy"], 4), n=300)


@pytest.mark.parametrize("section", ["2.5", "2.6", "3.1", "3.2", "3.4"])
def test_a_section_runs_on_its_own_in_a_fresh_folder(tmp_path, section):
    if section[0] == "3":
        pytest.importorskip("torch")
    data = make_small_data(tmp_path / "data")
    assert P.main(["--section", section, "--quick", "--data", str(data), "--out", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / "figures" / "results.json").read_text())
    if section == "3.1":
        assert results["cnn_architecture"]["total_params"] == 44426
        return
    key = {"2.5": "mlp_spec", "2.6": "mlp_best", "3.2": "cnn_spec", "3.4": "cnn_best"}[section]
    assert 0 <= results[key]["test_accuracy"] <= 1 and len(results["seconds"]) == 1  # 3.2 runs as 3.3


@pytest.mark.parametrize("section, missing", [("2.7", "mlp.npz"), ("2.8", "mlp_spec.npz")])
def test_a_section_that_needs_saved_weights_names_them(tmp_path, capsys, section, missing):
    data = make_small_data(tmp_path / "data")
    assert P.main(["--section", section, "--data", str(data), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{missing}: no readable MLP weights" in err and "--part mlp" in err


def test_a_section_of_the_other_part_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        P.main(["--part", "mlp", "--section", "3.4"])
    assert exit_.value.code == 2 and "--section 3.4 is not part of --part mlp" in capsys.readouterr().err


def test_the_data_folder_in_the_working_directory_is_found_when_none_is_beside_the_script(tmp_path):
    (tmp_path / "script").mkdir()
    shutil.copy(SCRIPT, tmp_path / "script" / "Project3.py")
    make_small_data(tmp_path / "work" / "Project3_data")
    run = run_script(tmp_path / "script" / "Project3.py", "--section", "2.5", "--quick", cwd=tmp_path / "work",
                     blocked=block_torch(tmp_path / "blocked"))
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "script" / "quick" / "weights" / "mlp_spec.npz").is_file()


def test_training_never_reads_the_test_split(tmp_path):
    """The same run with the test split replaced by random digits saves identical weights."""
    rng = np.random.default_rng(0)
    garbage = (rng.integers(0, 256, (300, 784)).astype(np.uint8), rng.integers(0, 10, 300))
    weights = {}
    for name, test in (("real", None), ("garbage", garbage)):
        data = make_small_data(tmp_path / name / "data", test=test)
        out = tmp_path / name / "out"
        assert P.main(["--part", "mlp", "--quick", "--data", str(data), "--out", str(out)]) == 0
        weights[name] = {f: dict(np.load(out / "weights" / f)) for f in ("mlp_spec.npz", "mlp.npz")}
    for f, params in weights["real"].items():
        for k, v in params.items():
            np.testing.assert_array_equal(v, weights["garbage"][f][k])


def test_importing_project3_without_torch_has_no_side_effects(tmp_path):
    code = ("import sys, importlib.util as u; s = u.spec_from_file_location('P', sys.argv[1]); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); print(m.torch, m.MLP(seed=0).forward([0.0] * 784).sum())")
    run = subprocess.run([sys.executable, "-c", code, str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(block_torch(tmp_path / "blocked"))))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[0] == "None" and float(run.stdout.split()[1]) == pytest.approx(1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked"]


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "--seed must lie in 0 to 4294967295, found -1."),
    (["--seed", str(2 ** 32)], "--seed must lie in 0 to 4294967295"),
    (["--device", "cuda"], "--device cuda was asked for, but torch finds no CUDA device"),
])
def test_bad_options_are_one_sentence_before_any_training(tmp_path, capsys, args, message):
    if "cuda" in args and P.torch is not None and P.torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert P.main(["--quick", "--out", str(tmp_path / "out")] + args) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1 and "epoch" not in captured.out


def test_an_out_that_cannot_be_written_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    for out in (tmp_path / "a_file", tmp_path / "a_file" / "below"):
        assert P.main(["--part", "mlp", "--quick", "--out", str(out)]) == 2
        captured = capsys.readouterr()
        assert f"--out {out}: not a folder this run can write" in captured.err and "epoch" not in captured.out
    assert (tmp_path / "a_file").read_text() == "not a folder"


@pytest.mark.parametrize("damaged", ['{"mlp_spec": {"val_accuracy": 0.9', "[]", "null"])
def test_a_damaged_results_json_is_one_sentence_and_is_left_alone(tmp_path, capsys, damaged):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "results.json").write_text(damaged)  # cut short, or not an object
    assert P.main(["--part", "mlp", "--quick", "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "results.json is not valid JSON" in captured.err and "delete it" in captured.err
    assert "epoch" not in captured.out and captured.err.count("\n") == 1
    assert (tmp_path / "figures" / "results.json").read_text() == damaged


class Payload:
    """Unpickled, it creates a file: proof that a loader ran code from a weight file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _damage(weights, case):
    mlp, cnn = weights / "mlp.npz", weights / "cnn.npz"
    params, state = dict(np.load(mlp)), dict(np.load(cnn))
    if case == "mlp_truncated":
        mlp.write_bytes(mlp.read_bytes()[:1000])
    elif case == "mlp_shape":
        np.savez(open(mlp, "wb"), **dict(params, W1=np.zeros((3, 3), np.float32)))
    elif case == "mlp_nan":
        np.savez(open(mlp, "wb"), **dict(params, b2=np.full(10, np.nan, np.float32)))
    elif case == "mlp_missing_array":
        np.savez(open(mlp, "wb"), **{k: v for k, v in params.items() if k != "W2"})
    elif case == "cnn_truncated":
        cnn.write_bytes(cnn.read_bytes()[:2000])
    elif case == "cnn_not_weights":
        cnn.write_bytes(b"PK\x03\x04 not a zip of arrays")
    elif case == "cnn_nan":
        np.savez(open(cnn, "wb"), **dict(state, **{"fc3.bias": np.full(10, np.nan, np.float32)}))
    elif case == "cnn_code":  # a pickle that runs code if it is ever unpickled
        cnn.write_bytes(pickle.dumps(Payload(weights / "pwned"), protocol=2))
    elif case == "cnn_code_inside":  # the same pickle as an object array inside a real .npz
        payload = np.empty(1, dtype=object)
        payload[0] = Payload(weights / "pwned")
        np.savez(open(cnn, "wb"), **dict(state, **{"fc3.bias": payload}))
    elif case == "cnn_old_format":  # the torch.save pickle of earlier versions, and no .npz
        cnn.unlink()
        (weights / "cnn.pt").write_bytes(pickle.dumps(Payload(weights / "pwned"), protocol=2))
        return "cnn.pt"
    return "mlp.npz" if case.startswith("mlp") else "cnn.npz"


@pytest.mark.parametrize("case", ["mlp_truncated", "mlp_shape", "mlp_nan", "mlp_missing_array", "cnn_truncated",
                                  "cnn_not_weights", "cnn_nan", "cnn_code", "cnn_code_inside", "cnn_old_format"])
def test_damaged_weights_are_one_sentence_and_exit_2(quick_run, tmp_path, capsys, case):
    folder, _ = quick_run
    shutil.copytree(folder / "quick" / "weights", tmp_path / "weights")
    name = _damage(tmp_path / "weights", case)
    assert P.main(["--part", "eval", "--data", str(folder / "Project3_Data"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and "Traceback" not in err
    assert not (tmp_path / "weights" / "pwned").exists()  # nothing in the file was run
    if case == "cnn_old_format":
        assert "--part cnn" in err and "tools/convert_weights.py" in err


def test_ctrl_c_while_weights_are_written_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch, capsys):
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
    assert not [p for p in out.rglob("*") if p.name.endswith((".tmp", ".lock"))]


def test_write_atomically_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")

    def failing(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        P.write_atomically(target, failing)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_two_runs_updating_results_at_once_both_land(tmp_path):
    code = ("import sys, importlib.util as u, pathlib; s = u.spec_from_file_location('P', sys.argv[1]); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); out = pathlib.Path(sys.argv[2]); "
            "(out / 'figures' / sys.argv[3]).touch(); "  # ready: wait for the other process, so that the two overlap
            "[None for _ in iter(lambda: len(list((out / 'figures').glob('ready*'))) < 2, False)]; "
            "[(m.update_results(out, **{f'{sys.argv[3]}{i}': list(range(500))}), "
            "m.update_results(out, merge=True, shared={sys.argv[3] + str(i): i})) for i in range(60)]")
    (tmp_path / "figures").mkdir()
    env = dict(os.environ, PYTHONPATH=str(block_torch(tmp_path / "blocked")))  # faster start; the lock is plain Python
    runs = [subprocess.Popen([sys.executable, "-c", code, str(SCRIPT), str(tmp_path), tag], env=env)
            for tag in ("ready_a", "ready_b")]
    assert [r.wait(timeout=120) for r in runs] == [0, 0]
    results = json.loads((tmp_path / "figures" / "results.json").read_text())
    keys = {f"ready_{tag}{i}" for tag in "ab" for i in range(60)}
    assert set(results) == keys | {"shared"} and set(results["shared"]) == keys  # no update lost, merged ones too
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["ready_a", "ready_b", "results.json"]


def test_ctrl_c_exits_130_with_one_line_and_leaves_no_temporary(tmp_path):
    folder, _ = grader_folder(tmp_path)
    run = subprocess.Popen([sys.executable, str(folder / "Project3.py"), "--part", "mlp", "--quick"], cwd=folder,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, PYTHONPATH=str(block_torch(tmp_path / "blocked"))))
    for line in run.stdout:
        if "2.5, 600 images] epoch 1/" in line:  # the first run's figures and weights are being written now
            run.send_signal(signal.SIGINT)
            break
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130
    assert err.strip().count("\n") == 0 and "interrupted" in err and "Traceback" not in err
    assert not [p for p in (folder / "quick").rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".lock")]
