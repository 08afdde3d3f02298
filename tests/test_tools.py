"""The tools around the graded file: the report built from the runs' numbers (in CI, from the committed
results), the submission zip, and smoke runs of the ablation and seed tools."""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT, P, block_torch, import_path, make_small_data

sys.path.insert(0, str(ROOT / "tools"))
report = import_path("report", ROOT / "tools" / "report.py")
submit = import_path("submit", ROOT / "tools" / "submit.py")
HAVE_LATEX = shutil.which("latexmk") is not None and shutil.which("pdftotext") is not None
SECTIONS = [
    "2.1 The network",
    "2.2 Initialisation",
    "2.3.1 The Jacobians",
    "2.3.2 The gradients",
    "2.4 Training",
    "2.5 Over-fitting?",
    "2.6 How well does it work?",
    "2.7 Where does it make mistakes?",
    "2.8 The templates",
    "3.1 The network",
    "3.2 Training",
    "3.3 Over-fitting?",
    "3.4 How well does it work?",
    "References",
    "Credits and collaboration",
    "For the grader.",
]
FIGURES = [
    "mlp_study",
    "mlp_best_training",
    "mlp_confusion",
    "mlp_mistakes",
    "mlp_templates",
    "cnn_study",
    "cnn_best_training",
    "cnn_confusion",
    "cnn_mistakes",
]


def pdf_text(pdf):
    return subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_report_tex_types_no_number_by_hand():
    tex = (ROOT / "report.tex").read_text()
    assert (
        re.findall(r"\b\d{2}\.\d{1,2}\b", tex) == []
    )  # accuracies such as 98.10 come from \R{...}
    assert r"\InputIfFileExists{figures/results.tex}" in tex


def test_committed_results_tex_is_what_the_committed_results_give():
    results = json.loads((ROOT / "figures" / "results.json").read_text())
    macros, tables = report.generate(results, json.loads(submit.AUTHOR.read_text()))
    committed = (ROOT / "figures" / "results.tex").read_text()
    assert dict(re.findall(r"^\\resdef\{(\w+)\}\{(.*)\}$", committed, re.M)) == macros
    for name, text in tables.items():
        assert (ROOT / "figures" / name).read_text() == text


@pytest.mark.skipif(not HAVE_LATEX, reason="needs LaTeX and poppler (CI installs both)")
def test_report_builds_from_the_committed_results_with_every_section_figure_and_number(tmp_path):
    shutil.copytree(ROOT / "figures", tmp_path / "figures")
    assert report.main(["--out", str(tmp_path)]) is None
    text = pdf_text(tmp_path / "report.pdf")
    for section in SECTIONS:
        assert section in text, f"{section} missing from the PDF"
    assert "not yet" not in text and "??" not in text
    results = json.loads((ROOT / "figures" / "results.json").read_text())
    for key in ("mlp_spec", "mlp_best", "cnn_spec", "cnn_best"):
        for field in ("test_accuracy", "val_accuracy"):
            assert report.pct(results[key][field]) in text, f"{key} {field} missing from the PDF"
    log = (tmp_path / "report.log").read_text(errors="replace")
    for name in FIGURES:  # every figure of the run is in the PDF
        assert f"figures/{name}.pdf" in log, f"figure {name} not included"
    assert not re.search(r"undefined|Undefined control sequence", log)
    assert all(float(pt) <= 1 for pt in re.findall(r"Overfull \\[hv]box \(([\d.]+)pt too", log))
    pages = subprocess.run(
        ["pdfinfo", str(tmp_path / "report.pdf")], capture_output=True, text=True
    ).stdout
    assert int(re.search(r"Pages:\s+(\d+)", pages).group(1)) <= 11


@pytest.mark.skipif(not HAVE_LATEX, reason="needs LaTeX and poppler (CI installs both)")
def test_report_builds_from_a_quick_run_with_placeholders_for_what_is_not_measured(quick_run):
    folder, _ = quick_run
    assert report.main(["--out", str(folder / "quick")]) is None
    text = pdf_text(folder / "quick" / "report.pdf")
    assert "not yet measured" in text and "3.4" in text  # the seed spread and ablation were not run


@pytest.mark.skipif(not HAVE_LATEX, reason="needs LaTeX")
def test_a_failed_build_names_the_error_and_keeps_the_old_report(
    quick_run, tmp_path, monkeypatch, capsys
):
    shutil.copytree(quick_run[0] / "quick" / "figures", tmp_path / "figures")
    (tmp_path / "report.pdf").write_bytes(b"%PDF old")
    broken = tmp_path / "broken.tex"
    broken.write_text(r"\documentclass{article}\begin{document}\undefinedmacro\end{document}")
    monkeypatch.setattr(report, "TEX", broken)
    assert report.run_tool(report.main, ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Undefined control sequence" in err and "report.log" in err and "left as it was" in err
    assert (tmp_path / "report.pdf").read_bytes() == b"%PDF old"


def test_zip_holds_exactly_the_script_and_the_report(tmp_path):
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.5 stand-in")
    assert submit.main(["--id", "xyz123", "--out", str(tmp_path)]) is None
    with zipfile.ZipFile(tmp_path / "xyz123_Project3.zip") as z:
        assert sorted(z.namelist()) == ["Project3.py", "report.pdf"]
        assert z.read("Project3.py") == (ROOT / "Project3.py").read_bytes()


@pytest.mark.parametrize("bad_id", ["", "../x", "a b", "x;rm", "1abc"])
def test_zip_refuses_an_id_that_is_not_a_plain_identifier(tmp_path, bad_id, capsys):
    (tmp_path / "report.pdf").write_bytes(b"%PDF")
    assert submit.run_tool(submit.main, ["--id", bad_id, "--out", str(tmp_path)]) == 2
    assert "directory ID must be a plain identifier" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "report.pdf"]


def test_ablation_rows_use_validation_only(tmp_path):
    data = make_small_data(tmp_path / "data")
    for name in ("MNIST_test_images.npy", "MNIST_test_labels.npy"):
        (data / name).unlink()  # it must not even look for the test split
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "ablation.py"),
            "--which",
            "mlp",
            "--quick",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    rows = json.loads((tmp_path / "out" / "figures" / "results.json").read_text())["ablation"]
    assert {
        key for key, group, _, _ in __import__("ablation").ROWS if group.startswith("mlp")
    } == set(rows)
    assert all(
        row["epochs"] == P.QUICK["epochs"] and 0 <= row["best_val_accuracy"] <= 1
        for row in rows.values()
    )


def test_seeds_records_the_spread_of_the_graders_run(tmp_path):
    data = make_small_data(tmp_path / "data")
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "seeds.py"),
            "--seeds",
            "2",
            "--quick",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(block_torch(tmp_path / "blocked"))),
    )
    assert run.returncode == 0, run.stderr
    seeds = json.loads((tmp_path / "out" / "figures" / "results.json").read_text())["seeds"]
    assert (
        seeds["seeds"] == [0, 1] and len(seeds["mlp_best"]["test"]) == 2 and "cnn_best" not in seeds
    )


def test_bench_measures_every_kind_side_by_side(tmp_path):
    if P.torch is None:
        pytest.skip("the benchmark compares against torch")
    data = make_small_data(tmp_path / "data", n_train=2000, n_val=300)
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "bench.py"),
            "--quick",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    bench = json.loads((tmp_path / "out" / "figures" / "results.json").read_text())["bench"]
    assert all(
        bench[kind] > 0 for kind in ("mlp_numpy", "mlp_torch", "mlp_best", "cnn_best", "cnn_plain")
    )
    assert bench["numpy_over_torch"] == round(bench["mlp_numpy"] / bench["mlp_torch"], 3)
