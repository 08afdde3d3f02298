"""The command line as a grader uses it: the grader's run, parts and sections on their own, the
import rule, the saved networks on a test split, and options refused before any training."""

import ast
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import (
    IMPORT_P,
    SCRIPT,
    P,
    block_torch,
    grader_folder,
    make_small_data,
    run_script,
)

ALLOWED = {"numpy", "matplotlib", "time", "torch", "argparse", "json", "pathlib", "sys"}
PART_1_FIGURES = ("mlp_study", "deskew", "mlp_confusion", "mlp_mistakes", "mlp_templates")
PART_2_FIGURES = ("cnn_study", "cnn_confusion", "cnn_mistakes")


def summary_lines(stdout):
    return [line for line in stdout.splitlines() if "test accuracy" in line]


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def test_project3_imports_only_what_the_assignment_allows_and_torch_inside_a_guard():
    tree = ast.parse(SCRIPT.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported == ALLOWED
    guards = [node for node in ast.walk(tree) if isinstance(node, ast.Try)]
    guarded = [node for guard in guards for node in guard.body if isinstance(node, ast.Import)]
    assert "torch" in {alias.name for node in guarded for alias in node.names}
    first_function = min(n.lineno for n in tree.body if isinstance(n, ast.FunctionDef))
    assert all(node.lineno < first_function for node in guarded)  # at the top


@pytest.mark.slow
def test_the_graders_run_without_torch_does_part_1_and_says_part_2_needs_torch(tmp_path):
    folder, elsewhere = grader_folder(tmp_path)
    blocked = block_torch(tmp_path / "blocked")
    run = run_script(folder / "Project3.py", "--quick", cwd=elsewhere, blocked=blocked)
    assert run.returncode == 0, run.stderr
    out = folder / "quick"
    for name in PART_1_FIGURES:
        assert (out / "figures" / f"{name}.pdf").stat().st_size > 1000
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    results = json.loads((out / "figures" / "results.json").read_text())
    assert results["mlp_best"]["test_n"] == 300
    assert np.array(results["mlp_confusion"]["matrix"]).sum() == 300
    assert set(results["seconds"]) == {"2.3", "2.5", "2.6", "2.7", "2.8"}
    lines = summary_lines(run.stdout)
    assert len(lines) == 2 and "extra credit" in lines[1]
    assert "Part 2 (3.1-3.4) is skipped: it needs PyTorch" in run.stdout.splitlines()[-1]
    assert "blocked by the test" in run.stdout  # the reason torch could not be imported
    run = run_script(
        folder / "Project3.py", "--part", "cnn", "--quick", cwd=elsewhere, blocked=blocked
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "Part 2 needs PyTorch, which cannot be imported here" in run.stderr
    for section in ("3.2", "2.3"):  # a section asked for skips nothing: no notice
        run = run_script(
            folder / "Project3.py", "--section", section, "--quick", cwd=elsewhere, blocked=blocked
        )
        assert "is skipped" not in run.stdout
        assert run.returncode == (2 if section == "3.2" else 0), run.stderr


@pytest.mark.slow
def test_the_graders_quick_run_does_every_section_and_ends_with_the_summary(quick_run):
    folder, run = quick_run
    out = folder / "quick"
    for name in PART_1_FIGURES + PART_2_FIGURES:
        assert (out / "figures" / f"{name}.pdf").is_file()
        assert (out / "figures" / f"{name}.png").is_file()
    weights = sorted(p.name for p in (out / "weights").iterdir())
    assert weights == ["cnn.npz", "cnn_spec.npz", "mlp.npz", "mlp_spec.npz"]
    results = json.loads((out / "figures" / "results.json").read_text())
    assert list(results["seconds"]) == list(P.SECTIONS)  # every section, each timed
    assert results["cnn_architecture"]["total_params"] == 44426
    lines = summary_lines(run.stdout)
    assert len(lines) == 4 and sum("extra credit" in line for line in lines) == 2
    assert f"{100 * results['cnn_best']['test_accuracy']:.2f} %" in lines[3]
    assert "Done in" in run.stdout and f"Figures, weights and results.json in {out}." in run.stdout
    assert not [p for p in out.rglob("*") if p.suffix == ".tmp"]  # no temporary left


@pytest.mark.slow
@pytest.mark.parametrize("section", ["2.5", "2.6", "3.1", "3.2", "3.4"])
def test_a_section_runs_on_its_own_in_a_fresh_folder(tmp_path, section):
    if section[0] == "3":
        pytest.importorskip("torch")
    data = make_small_data(tmp_path / "data")
    out = tmp_path / "out"
    assert P.main(["--section", section, "--quick", "--data", str(data), "--out", str(out)]) == 0
    results = json.loads((out / "figures" / "results.json").read_text())
    assert list(results["seconds"]) == [section]
    if section == "3.1":
        assert results["cnn_architecture"]["total_params"] == 44426
        return
    key = {"2.5": "mlp_spec", "2.6": "mlp_best", "3.2": "cnn_spec", "3.4": "cnn_best"}[section]
    assert 0 <= results[key]["test_accuracy"] <= 1


@pytest.mark.slow
def test_section_3_3_plots_beside_the_run_of_3_2_and_asks_for_it_first(tmp_path, capsys):
    pytest.importorskip("torch")
    data = make_small_data(tmp_path / "data")
    args = ["--quick", "--data", str(data), "--out", str(tmp_path / "out")]
    assert P.main(["--section", "3.3", *args]) == 2
    captured = capsys.readouterr()
    assert "run `python Project3.py --section 3.2` first" in captured.err
    assert "epoch" not in captured.out
    assert P.main(["--section", "3.2", *args]) == 0
    assert P.main(["--section", "3.3", *args]) == 0
    results = json.loads((tmp_path / "out" / "figures" / "results.json").read_text())
    assert results["cnn_spec_2000"]["train_n"] == 200 and results["cnn_spec"]["train_n"] == 600
    assert (tmp_path / "out" / "figures" / "cnn_study.png").is_file()


@pytest.mark.parametrize("section, missing", [("2.7", "mlp.npz"), ("2.8", "mlp_spec.npz")])
def test_a_section_that_needs_saved_weights_names_them(tmp_path, capsys, section, missing):
    data = make_small_data(tmp_path / "data")
    assert P.main(["--section", section, "--data", str(data), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{missing}: file not found" in err


def test_a_section_of_the_other_part_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        P.main(["--part", "mlp", "--section", "3.4"])
    assert exit_.value.code == 2
    assert "--section 3.4 is not part of --part mlp" in capsys.readouterr().err


@pytest.mark.slow
def test_the_data_folder_in_the_working_directory_is_found_when_none_is_beside_the_script(
    tmp_path,
):
    (tmp_path / "script").mkdir()
    shutil.copy(SCRIPT, tmp_path / "script" / "Project3.py")
    make_small_data(tmp_path / "work" / "Project3_data")
    run = run_script(
        tmp_path / "script" / "Project3.py",
        "--section",
        "2.5",
        "--quick",
        cwd=tmp_path / "work",
        blocked=block_torch(tmp_path / "blocked"),
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "script" / "quick" / "weights" / "mlp_spec.npz").is_file()


@pytest.mark.slow
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
    for file, params in weights["real"].items():
        for name, theta in params.items():
            if name != "run":  # each run has its own id
                np.testing.assert_array_equal(theta, weights["garbage"][file][name])


@pytest.mark.slow
def test_importing_project3_without_torch_has_no_side_effects(tmp_path):
    code = IMPORT_P + "print(P.torch, P.MLP(seed=0).forward([0.0] * 784).sum())"
    env = dict(os.environ, PYTHONPATH=str(block_torch(tmp_path / "blocked")))
    run = subprocess.run(
        [sys.executable, "-c", code, str(SCRIPT)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[0] == "None" and float(run.stdout.split()[1]) == pytest.approx(1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed", "-1"], "--seed must lie in 0 to 4294967295, found -1."),
        (["--seed", str(2**32)], "--seed must lie in 0 to 4294967295"),
        (["--device", "cuda"], "--device cuda was asked for, but torch finds no CUDA device"),
    ],
)
def test_bad_options_are_one_sentence_before_any_training(tmp_path, capsys, args, message):
    if "cuda" in args and P.torch is not None and P.torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert P.main(["--quick", "--out", str(tmp_path / "out"), *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1
    assert "epoch" not in captured.out


@pytest.mark.parametrize("option", ["--out", "--data"])
def test_an_empty_folder_name_is_a_usage_error_and_writes_nothing(tmp_path, capsys, option):
    with pytest.raises(SystemExit) as exit_:
        P.main(["--quick", option, ""])
    assert exit_.value.code == 2
    assert "--out and --data need a folder; an empty one was given" in capsys.readouterr().err


def test_an_out_that_cannot_be_written_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    for out in (tmp_path / "a_file", tmp_path / "a_file" / "below"):
        assert P.main(["--part", "mlp", "--quick", "--out", str(out)]) == 2
        captured = capsys.readouterr()
        assert f"--out {out}: not a folder this run can write" in captured.err
        assert "epoch" not in captured.out
    assert (tmp_path / "a_file").read_text() == "not a folder"


def test_no_function_calls_into_a_later_section():
    """Project3.py reads top to bottom: a function calls only what stands in its own section or
    an earlier one (the sections are the `# ==== ` banners)."""
    source = SCRIPT.read_text()
    banners = [i + 1 for i, line in enumerate(source.splitlines()) if line.startswith("# ==== ")]
    tree = ast.parse(source)
    defined = {node.name: node.lineno for node in tree.body if hasattr(node, "name")}

    def section(lineno):
        return sum(start < lineno for start in banners)

    forward = [
        (top.name, node.func.id)
        for top in tree.body
        if isinstance(top, (ast.FunctionDef, ast.ClassDef))
        for node in ast.walk(top)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        if node.func.id in defined and section(defined[node.func.id]) > section(top.lineno)
    ]
    assert forward == []


@pytest.mark.slow
def test_device_cuda_is_ignored_where_only_part_1_runs(tmp_path):
    """--device is Part 2's: with --part mlp it asks nothing of CUDA, GPU or not."""
    data = make_small_data(tmp_path / "data")
    args = ["--part", "mlp", "--quick", "--device", "cuda", "--data", str(data)]
    assert P.main([*args, "--out", str(tmp_path / "out")]) == 0


@pytest.mark.slow
def test_2_8_measures_each_network_from_where_its_own_training_started(tmp_path):
    """2.5 run with seed 0 and 2.6 with seed 1: 2.8 compares each W1 with its own initial one."""
    data = make_small_data(tmp_path / "data")
    common = ["--quick", "--data", str(data), "--out", str(tmp_path / "out")]
    assert P.main(["--section", "2.5", "--seed", "0", *common]) == 0
    assert P.main(["--section", "2.6", "--seed", "1", *common]) == 0
    assert P.main(["--section", "2.8", *common]) == 0
    results = json.loads((tmp_path / "out" / "figures" / "results.json").read_text())
    weights = tmp_path / "out" / "weights"
    x = P.load_data(data)["train"][0][: P.QUICK["train_n"]]
    for key, file, seed in (("mlp_spec", "mlp_spec.npz", 0), ("mlp_best", "mlp.npz", 1)):
        net = P.MLP.load(weights / file, "2.6")
        assert net.deskew == (key == "mlp_best")  # 2.6's network reads deskewed digits
        inked = (P.deskew(x) if net.deskew else x).max(axis=0) > 0  # in what the network reads
        change = net.W1[:, inked] - P.MLP(seed=seed).W1[:, inked]
        expected = float(np.sqrt(np.mean(change**2)))
        assert results["mlp_templates"][key]["rms_change_inked"] == pytest.approx(expected)
        assert results["mlp_templates"][key]["blank_pixels"] == int((~inked).sum())
