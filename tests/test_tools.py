"""The tools around the graded file: the report built from the runs' numbers (in CI, from the
committed results), its statistics, the submission zip, and the other tools' checks and runs."""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from scipy import stats

from conftest import ROOT, P, block_torch, import_path, make_small_data

sys.path.insert(0, str(ROOT / "tools"))
report = import_path("report", ROOT / "tools" / "report.py")
submit = import_path("submit", ROOT / "tools" / "submit.py")
TOOLS = ROOT / "tools"
HAVE_LATEX = shutil.which("latexmk") is not None and shutil.which("pdftotext") is not None
needs_latex = pytest.mark.skipif(not HAVE_LATEX, reason="needs LaTeX and poppler (CI has both)")
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
    "Repeatability, versions, and where the numbers come from",
    "Credits",
    "References",
    "Appendix A: the code and the commands",
    "Collaborators",
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
    command = ["pdftotext", "-layout", str(pdf), "-"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def tool(name, *args, cwd=None, env=None, timeout=300):
    command = [sys.executable, str(TOOLS / f"{name}.py"), *map(str, args)]
    return subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


@pytest.fixture()
def author_file(tmp_path, monkeypatch):
    """tools/author.json redirected to a scratch file, so that tests never change the real one."""
    path = tmp_path / "author.json"
    monkeypatch.setattr(report, "AUTHOR", path)
    return path


# ---- The report ---------------------------------------------------------------------------------


def test_report_tex_types_no_number_by_hand():
    tex = (ROOT / "report.tex").read_text()
    assert re.findall(r"\b\d{2}\.\d{1,2}\b", tex) == []  # accuracies such as 98.10 come from \R
    assert r"\InputIfFileExists{figures/numbers.tex}" in tex


def figures_rewritten_here():
    """Whether a run here has rewritten figures/ since the last commit (git can tell; without git,
    the files are taken as committed)."""
    try:
        diff = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--", "figures"])
    except OSError:
        return False
    return diff.returncode == 1


def committed_macros():
    """The macros of the committed figures/numbers.tex."""
    return dict(
        re.findall(
            r"^\\resdef\{(\w+)\}\{(.*)\}$", (ROOT / "figures" / "numbers.tex").read_text(), re.M
        )
    )


def test_committed_numbers_tex_is_what_the_committed_results_give():
    if figures_rewritten_here():  # e.g. README's main job, then its tests, in one clone
        pytest.skip("figures/ were rewritten by a run here; this compares the committed files")
    results = sys.modules["common"].all_results(ROOT)  # results.json and the tools' files
    macros, tables = report.generate(results, report.read_author())
    assert committed_macros() == macros
    for name, text in tables.items():
        assert (ROOT / "figures" / name).read_text() == text


def code_names(tex):
    return {
        name.replace("\\_", "_") for name in re.findall(r"\\code\{(?:class )?([\w\\.]+)\}", tex)
    }


def test_the_running_text_names_no_function_and_the_code_map_names_real_ones():
    tex = (ROOT / "report.tex").read_text()
    body, appendix = tex.split("\\appendix")
    defined = {name for name in dir(P) if not name.startswith("__")} | set(dir(P.MLP))
    assert not code_names(body) & defined  # prose about the method, not the code
    mapped = code_names(appendix.split("\\end{tabular}")[0]) - {"Project3.py"}
    assert mapped and mapped <= defined, mapped - defined


@pytest.mark.slow
@needs_latex
def test_report_builds_from_the_committed_results_with_every_section_figure_and_number(tmp_path):
    shutil.copytree(ROOT / "figures", tmp_path / "figures")
    assert report.run_tool(report.main, ["--out", str(tmp_path)]) == 0
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
    info = subprocess.run(["pdfinfo", str(tmp_path / "report.pdf")], capture_output=True, text=True)
    assert int(re.search(r"Pages:\s+(\d+)", info.stdout).group(1)) <= 11  # references on 11
    # A file is written through the temporary <stem>.tmp beside it: the report's files never share
    # a stem, and so a temporary, with the runs' result files, even when both write at once.
    written = {p.stem for p in (tmp_path / "figures").glob("*.tex")}
    assert written and not written & {p.stem for p in (tmp_path / "figures").glob("*.json")}


@pytest.mark.slow
@needs_latex
def test_report_builds_from_a_quick_run_with_placeholders_for_what_is_not_measured(
    quick_run, author_file
):
    folder, _ = quick_run
    assert report.run_tool(report.main, ["--out", str(folder / "quick")]) == 0
    text = pdf_text(folder / "quick" / "report.pdf")
    assert "not yet measured" in text and "3.4" in text  # no seed spread, no ablation
    assert "YOUR NAME" in text and "YOUR ID" in text  # no author.json: the placeholders


@pytest.mark.slow
@needs_latex
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
    assert "Undefined control sequence" in err and "report.log" in err
    assert "left as it was" in err
    assert (tmp_path / "report.pdf").read_bytes() == b"%PDF old"


NASTY_NAME = r"\input{/etc/hostname} R^2 ~tilde 100% A&B #1 snake_case {braces}"


def test_author_and_id_are_text_never_latex(author_file):
    escaped = report.escape(NASTY_NAME)
    plain = re.sub(r"\\text(backslash|asciicircum|asciitilde)\{\}|\\[&%$#_{}]|\{\}", "", escaped)
    assert not set(plain) & set("\\^~&%$#_{}")  # every special character was escaped
    author = report.read_author("abc123", NASTY_NAME)
    macros, _ = report.generate({}, author)
    assert macros["Author"] == escaped and macros["DirectoryId"] == "abc123"


@pytest.mark.slow
@needs_latex
def test_a_nasty_name_prints_as_typed(quick_run, tmp_path, author_file):
    shutil.copytree(quick_run[0] / "quick" / "figures", tmp_path / "figures")
    secret = tmp_path / "secret.tex"
    secret.write_text("SECRETMARKER")
    name = NASTY_NAME.replace("/etc/hostname", str(secret))
    args = ["--out", str(tmp_path), "--id", "abc123", "--author", name]
    assert report.run_tool(report.main, args) == 0
    text = " ".join(pdf_text(tmp_path / "report.pdf").split())
    text = text.replace("\u02c6", "^").replace("\u02dc", "~")  # the accents that print ^ and ~
    assert name in text
    assert "SECRETMARKER" not in text  # \input was not run
    assert json.loads(author_file.read_text()) == {"author": name, "id": "abc123"}


@pytest.mark.slow
@needs_latex
@pytest.mark.parametrize(
    "name",
    [
        "Zoë Brontë-Łukasz Żółć, Jiří Dvořák, Ayşe Çağlar İnanç, Sørina Ægir Þór",
        'Ann <<Lee>> O\'Brien "Bo" | x--y ,,z!` ?` é',  # T1's ligatures and OT1's odd glyphs
    ],
)
def test_accented_and_special_names_print_as_typed(quick_run, tmp_path, author_file, name):
    shutil.copytree(quick_run[0] / "quick" / "figures", tmp_path / "figures")
    args = ["--out", str(tmp_path), "--id", "abc123", "--author", name]
    assert report.run_tool(report.main, args) == 0
    assert " ".join(name.split()) in " ".join(pdf_text(tmp_path / "report.pdf").split())
    title = json.loads((tmp_path / "figures" / "title.json").read_text())
    assert title["author"] == name and title["id"] == "abc123"


@pytest.mark.parametrize(
    "name, needs",
    [
        ("王小明", "texlive-lang-cjk"),
        ("Nguyễn Văn An", "texlive-lang-other"),
        ("Αλέξης", "texlive-lang-greek"),
        ("Пётр", "texlive-lang-cyrillic"),
        ("Dan 🙂", "no LaTeX package here sets it"),
    ],
)
def test_a_name_the_fonts_cannot_set_is_refused_before_anything_is_saved(
    tmp_path, author_file, capsys, name, needs
):
    author_file.write_text(json.dumps({"author": "Ann Lee", "id": "abc123"}))
    before = author_file.read_bytes()
    args = ["--out", str(tmp_path), "--id", "abc123", "--author", name]
    assert report.run_tool(report.main, args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needs in err and "nothing was saved" in err
    assert author_file.read_bytes() == before and not list(tmp_path.glob("figures/*"))


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"author": 5}', None])
def test_a_damaged_or_missing_author_file_is_one_sentence_or_the_placeholders(
    author_file, tmp_path, capsys, content
):
    if content is not None:
        author_file.write_text(content)
        with pytest.raises(P.UserError, match="author.json is damaged .*delete it, or give both"):
            report.read_author()
    else:
        assert report.read_author() == {"author": "YOUR NAME", "id": "YOUR ID"}
    author = report.read_author("abc123", "A Name")  # both given: the file is not needed
    assert author == {"author": "A Name", "id": "abc123"}


@pytest.mark.parametrize(
    "entry, found",
    [
        ({"mlp_best": {"val_accuracy": 0.9}}, "'mlp_best' lacks a field"),
        ({"mlp_confusion": {"matrix": "x"}}, "'mlp_confusion' lacks a field or holds a wrong"),
        ({"seconds": {"2.5": "slow"}}, "expected seconds to map sections to numbers"),
    ],
)
def test_a_malformed_results_entry_is_one_sentence_naming_it(tmp_path, capsys, entry, found):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "results.json").write_text(json.dumps(entry))
    assert report.run_tool(report.main, ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert found in err and err.count("\n") == 1


def test_a_zero_where_a_count_belongs_is_one_sentence(tmp_path, capsys):
    results = json.loads((ROOT / "figures" / "results.json").read_text())
    results["mlp_best"]["test_n"] = 0
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "results.json").write_text(json.dumps(results))
    assert report.run_tool(report.main, ["--out", str(tmp_path)]) == 2
    assert "'mlp_best' lacks a field or holds a wrong value (ValueError" in (
        capsys.readouterr().err
    )


# ---- The statistics -----------------------------------------------------------------------------


def test_the_noise_band_uses_students_t_for_the_number_of_seeds():
    for values, quantile in (
        ([0.98, 0.99], 12.706),
        ([0.9810, 0.9826, 0.9830, 0.9838, 0.9858], 2.776),
    ):
        n, sd = len(values), report.mean_sd(values)[1]
        band = quantile * sd * math.sqrt(1 + 1 / n)  # Student's t as the printed tables give it
        assert report.noise_band(values) == pytest.approx(band, rel=1e-3)


def test_a_single_run_and_several_are_compared_with_the_right_t():
    recipe = [0.9810, 0.9826, 0.9830, 0.9838, 0.9858]
    mean, sd = report.mean_sd(recipe)
    difference, band, p_value = report.compare([mean + report.noise_band(recipe)], recipe)
    assert band == pytest.approx(report.noise_band(recipe)) and p_value == pytest.approx(0.05)
    variant = [0.9790, 0.9800, 0.9804, 0.9812, 0.9830]  # Welch against a textbook computation
    a, b = sd**2 / 5, report.mean_sd(variant)[1] ** 2 / 5
    df = (a + b) ** 2 / (a**2 / 4 + b**2 / 4)
    difference, band, p_value = report.compare(variant, recipe)
    assert difference == pytest.approx(sum(variant) / 5 - mean)
    assert band == pytest.approx(stats.t.ppf(0.975, df) * math.sqrt(a + b))
    assert p_value == pytest.approx(2 * stats.t.sf(abs(difference) / math.sqrt(a + b), df))
    assert 4 < df < 8 and p_value < 0.05


def test_holm_rejects_step_by_step_and_mcnemar_is_the_exact_binomial():
    assert report.holm([0.01, 0.04, 0.03, 0.005]) == [True, False, False, True]
    assert report.holm([0.001, 0.011, 0.02, 0.04]) == [True, True, True, True]
    assert report.holm([0.03, 0.03]) == [False, False]  # 0.03 > 0.05 / 2: it stops there
    assert report.mcnemar_p(1, 9) == pytest.approx(2 * 11 / 1024)
    assert report.mcnemar_p(5, 5) == 1.0 and report.mcnemar_p(0, 0) == 1.0


def test_a_stack_verdict_names_the_networks_in_plain_words():
    keys = ("mlp_spec", "mlp_best", "cnn_spec", "cnn_best")
    seeds = {key: {"test": [0.97, 0.971, 0.969]} for key in keys}  # seed 0 first
    run = {"seconds": 60, "python": "3.8.18", "numpy": "1.19.5", "matplotlib": "3.3.4"}
    run.update(torch="1.7.1+cpu", val_accuracy=dict.fromkeys(keys, 0.96))
    same = dict(run, test_accuracy=dict.fromkeys(keys, 0.97))
    verdict = report.stack_macros(same, seeds, "Old")["OldVerdict"]
    assert verdict == "identical to the pinned stack's for all four networks"
    mixed = dict(run, test_accuracy=dict(zip(keys, (0.97, 0.97, 0.9705, 0.90))))
    assert report.stack_macros(mixed, seeds, "New")["NewVerdict"] == (
        "identical to the pinned stack's for the MLP of 2.5 and the MLP of 2.6; "
        "within the pinned stack's seed spread for the CNN of 3.2; "
        "outside the pinned stack's seed spread for the CNN of 3.4"
    )
    assert report.spoken_list(["a", "b", "c"]) == "a, b and c"


def test_the_equal_accuracy_test_is_the_textbook_chi_squared_with_a_monte_carlo_p_value():
    results = json.loads((ROOT / "figures" / "results.json").read_text())
    C = np.array(results["mlp_confusion"]["matrix"])
    statistic, p_value = report.equal_accuracy_test(C)
    n = C.sum(axis=1)
    observed = np.stack([np.diag(C), n - np.diag(C)], axis=1)
    expected = np.outer(n, observed.sum(axis=0)) / n.sum()
    assert statistic == pytest.approx(((observed - expected) ** 2 / expected).sum())
    large = C * 5  # with large counts the draws agree with the chi-squared distribution
    statistic, p_value = report.equal_accuracy_test(large, resamples=5000)
    assert p_value == pytest.approx(stats.chi2.sf(statistic, 9), abs=0.02)


def confusion_entry(C):
    """A results.json confusion entry for the matrix C, its off-diagonal cells largest first."""
    cells = [(int(C[t, p]), t, p) for t in range(10) for p in range(10) if t != p and C[t, p]]
    top = [{"true": t, "predicted": p, "count": n} for n, t, p in sorted(cells, reverse=True)]
    return {"matrix": C.tolist(), "top_confusions": top}


@pytest.mark.slow
def test_the_sentences_on_how_the_digits_spread_say_what_their_tests_say():
    even = np.full((10, 10), 2) + np.diag(np.full(10, 480))  # 18 wrong answers for every digit
    m = report.confusion_macros(confusion_entry(even), "Mlp")
    assert m["MlpPredictedSpread"] == m["MlpAccSpread"] == "a spread that chance alone explains"
    onto_three = np.diag(np.full(10, 480))
    onto_three[:, 3] += 20  # every digit's mistakes are 3s (and the 3s' are 5s)
    onto_three[3, 3] -= 20
    onto_three[3, 5] += 20
    m = report.confusion_macros(confusion_entry(onto_three), "Mlp")
    assert m["MlpPredictedSpread"] == "a spread beyond what chance explains"
    assert m["MlpMostPredicted"] == "3"


def test_the_weakest_digits_are_named_lowest_first_with_their_accuracies():
    C = np.diag(np.full(10, 500))
    for digit, wrong in ((9, 30), (4, 20), (5, 20), (0, 10)):  # 4 and 5 tie: in digit order
        C[digit, digit] -= wrong
        C[digit, 7 if digit != 7 else 1] += wrong
    m = report.confusion_macros(confusion_entry(C), "Mlp")
    assert m["MlpWeakest"] == "9 (94.0\\pct), 4 (96.0\\pct) and 5 (96.0\\pct)"


def test_every_worded_result_is_in_the_report_and_supported_by_the_committed_numbers():
    tex = " ".join((ROOT / "report.tex").read_text().split())
    assert [phrase for phrase in report.CLAIMS if phrase not in tex] == []
    assert report.unsupported_claims(committed_macros(), tex) == []


@pytest.mark.slow
def test_a_worded_result_the_numbers_no_longer_support_is_named(tmp_path, capsys, monkeypatch):
    tex = (ROOT / "report.tex").read_text()
    m = committed_macros()
    m.update(AblMlpShiftsVerdict="beyond the noise", AblMlpShiftsDiff="$-$0.50", CnnChiP="<0.001")
    named = report.unsupported_claims(m, tex)
    assert named == [
        "Shifts alone are not measurably worse",
        "no digit is measurably harder than the others for the CNN",
    ]
    m["AblMlpShiftsDiff"] = "+0.50"  # beyond the noise, but better: not worse
    del m["CnnChiP"]  # not measured yet (a quick run): no verdict either way
    assert report.unsupported_claims(m, tex) == []
    shutil.copytree(ROOT / "figures", tmp_path / "figures")
    monkeypatch.setitem(report.CLAIMS, "fails to train", lambda m: False)
    report.write_sources(tmp_path, report.read_author())
    err = capsys.readouterr().err
    assert 'report.tex says "fails to train", which these results do not support' in err


def test_the_binomial_tail():
    assert report.binomial_tail(0, 5, 0.3) == pytest.approx(1)
    assert report.binomial_tail(5, 5, 0.5) == pytest.approx(1 / 32)
    assert report.binomial_tail(2, 3, 0.5) == pytest.approx(0.5)


# ---- The submission -----------------------------------------------------------------------------


def built_report(folder, author="Ann Lee", directory_id="ann123", pdf=b"%PDF-1.5 stand-in"):
    """A report.pdf with the figures/title.json that tools/report.py writes beside what it built."""
    (folder / "report.pdf").write_bytes(pdf)
    (folder / "figures").mkdir(exist_ok=True)
    title = {"author": author, "id": directory_id, "sha256": report.sha256(folder / "report.pdf")}
    (folder / "figures" / "title.json").write_text(json.dumps(title))


def test_zip_holds_exactly_the_script_and_the_report(tmp_path):
    built_report(tmp_path)
    assert submit.run_tool(submit.main, ["--id", "ann123", "--out", str(tmp_path)]) == 0
    with zipfile.ZipFile(tmp_path / "ann123_Project3.zip") as archive:
        assert sorted(archive.namelist()) == ["Project3.py", "report.pdf"]
        assert archive.read("Project3.py") == (ROOT / "Project3.py").read_bytes()


def test_zip_refuses_the_placeholder_id_and_says_how_to_set_one(tmp_path, author_file, capsys):
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.5 stand-in")
    author_file.write_text(json.dumps({"author": "YOUR NAME", "id": "YOUR ID"}))
    assert submit.run_tool(submit.main, ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "holds no directory ID yet" in err and "tools/report.py --id YOURID" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["author.json", "report.pdf"]


@pytest.mark.parametrize(
    "title, found",
    [
        (None, "is not the report that tools/report.py last built"),
        ({"author": "YOUR NAME", "id": "YOUR ID"}, "shows YOUR NAME or YOUR ID on its title"),
        ({"author": "Ann Lee", "id": "abc999"}, "is titled with the ID abc999, not ann123"),
        ({"changed": True}, "is not the report that tools/report.py last built"),
    ],
)
def test_zip_refuses_a_report_that_is_not_the_students(tmp_path, capsys, title, found):
    """The committed report.pdf carries the placeholders; a student who zips it without building
    their own is stopped, and so is one whose report names another ID or was changed since."""
    if title is None:
        (tmp_path / "report.pdf").write_bytes(b"%PDF-1.5 made elsewhere")
    elif "changed" in title:
        built_report(tmp_path)
        (tmp_path / "report.pdf").write_bytes(b"%PDF-1.5 edited since")
    else:
        built_report(tmp_path, title["author"], title["id"])
    assert submit.run_tool(submit.main, ["--id", "ann123", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert found in err and "tools/report.py --id ann123" in err and err.count("\n") == 1
    assert not list(tmp_path.glob("*.zip"))


@pytest.mark.parametrize("content, found", [(b"", "not a PDF"), (None, "does not exist yet")])
def test_zip_refuses_a_missing_or_empty_report(tmp_path, capsys, content, found):
    if content is not None:
        (tmp_path / "report.pdf").write_bytes(content)
    assert submit.run_tool(submit.main, ["--id", "abc", "--out", str(tmp_path)]) == 2
    assert found in capsys.readouterr().err
    assert not list(tmp_path.glob("*.zip"))


@pytest.mark.parametrize("bad_id", ["", "../x", "a b", "x;rm", "1abc"])
def test_zip_refuses_an_id_that_is_not_a_plain_identifier(tmp_path, bad_id, capsys):
    (tmp_path / "report.pdf").write_bytes(b"%PDF")
    assert submit.run_tool(submit.main, ["--id", bad_id, "--out", str(tmp_path)]) == 2
    assert "directory ID must be a plain identifier" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "report.pdf"]


# ---- The other tools: inputs checked first, one sentence, signals ------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, args",
    [
        ("report", []),
        ("submit", ["--id", "abc"]),
        ("seeds", ["--quick"]),
        ("ablation", ["--quick", "--which", "mlp"]),
        ("bench", ["--quick"]),
    ],
)
def test_every_tool_refuses_an_out_it_cannot_write_before_its_work(tmp_path, name, args):
    (tmp_path / "a_file").write_text("not a folder")
    out = tmp_path / "a_file" / "below"
    start = time.monotonic()
    run = tool(name, *args, "--out", out)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert f"--out {out}" in run.stderr and "Traceback" not in run.stderr
    assert "seed 0" not in run.stdout and "round 1" not in run.stdout  # before any work
    assert time.monotonic() - start < 60


@pytest.mark.slow
def test_bench_refuses_zero_rounds(tmp_path):
    run = tool("bench", "--rounds", "0", "--out", tmp_path)
    assert run.returncode == 2 and "--rounds must be at least 1, found 0." in run.stderr


@pytest.mark.slow
def test_ablation_rows_use_validation_only(tmp_path):
    data = make_small_data(tmp_path / "data")
    for name in ("MNIST_test_images.npy", "MNIST_test_labels.npy"):
        (data / name).unlink()  # it must not even look for the test split
    run = tool("ablation", "--which", "mlp", "--quick", "--data", data, "--out", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    rows = json.loads((tmp_path / "out" / "figures" / "ablation.json").read_text())["ablation"]
    ablation = import_path("ablation", TOOLS / "ablation.py")
    assert {key for key, group, _, _ in ablation.ROWS if group.startswith("mlp")} == set(rows)
    for row in rows.values():
        assert row["epochs"] == P.QUICK["epochs"] and 0 <= row["best_val_accuracy"] <= 1


@pytest.mark.slow
def test_every_cnn_row_of_the_ablation_runs(tmp_path):
    if P.torch is None:
        pytest.skip("the CNN rows need torch")
    data = make_small_data(tmp_path / "data")
    run = tool("ablation", "--which", "cnn", "--quick", "--data", data, "--out", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    rows = json.loads((tmp_path / "out" / "figures" / "ablation.json").read_text())["ablation"]
    ablation = import_path("ablation", TOOLS / "ablation.py")
    assert {key for key, group, _, _ in ablation.ROWS if group.startswith("cnn")} == set(rows)


@pytest.mark.slow
def test_the_paired_counts_of_2_5_repeat_the_graders_small_run(quick_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(quick_run[0] / "quick" / "figures", out / "figures")
    args = ["--which", "mlp", "--rows", "mlp_shifts", "--quick", "--out", out]
    run = tool("ablation", *args, "--data", quick_run[0] / "Project3_Data")
    assert run.returncode == 0, run.stderr
    paired = json.loads((out / "figures" / "ablation.json").read_text())["mlp_small_paired"]
    small = json.loads((out / "figures" / "results.json").read_text())["mlp_spec_2000"]
    assert paired["epochs"][-1] == len(small["history"]["step"]) and paired["val_n"] > 0
    both = paired["right_both"]
    counts = both + paired["right_first_only"], both + paired["right_last_only"]
    history = small["history"]
    at = [history["val_acc"][epoch - 1] for epoch in paired["epochs"]]
    assert [round(c / paired["val_n"], 5) for c in counts] == at
    results = json.loads((out / "figures" / "results.json").read_text())
    results["mlp_spec_2000"]["history"]["val_acc"][-1] += 0.1  # not this code's run
    (out / "figures" / "results.json").write_text(json.dumps(results))
    run = tool("ablation", *args, "--data", quick_run[0] / "Project3_Data")
    assert run.returncode == 2 and "does not give results.json's validation" in run.stderr


@pytest.mark.slow
def test_seeds_records_the_spread_of_the_graders_run(tmp_path):
    data = make_small_data(tmp_path / "data")
    env = dict(os.environ, PYTHONPATH=str(block_torch(tmp_path / "blocked")))
    run = tool(
        "seeds", "--seeds", "2", "--quick", "--data", data, "--out", tmp_path / "out", env=env
    )
    assert run.returncode == 0, run.stderr
    seeds = json.loads((tmp_path / "out" / "figures" / "seeds.json").read_text())["seeds"]
    assert seeds["seeds"] == [0, 1] and len(seeds["mlp_best"]["test"]) == 2
    assert seeds["mlp_best"]["epochs"] == seeds["mlp_spec"]["epochs"] == 2  # --quick's
    assert "cnn_best" not in seeds
    args = ["--seeds", "2", "--quick", "--data", data, "--out", tmp_path / "out"]
    run = tool("seeds", *args, "--keep-previous", "the recipe before", env=env)
    assert run.returncode == 0, run.stderr
    recorded = json.loads((tmp_path / "out" / "figures" / "seeds.json").read_text())
    notes = dict.fromkeys(["mlp_spec", "mlp_best"], "the recipe before")  # every network's runs
    runs = {key: seeds[key] for key in notes}
    assert recorded["seeds_previous"] == {**runs, "seeds": [0, 1], "quick": True, "notes": notes}
    untimed = {key: value for key, value in seeds.items() if key != "seconds"}
    assert {k: v for k, v in recorded["seeds"].items() if k != "seconds"} == untimed  # repeated
    run = tool("seeds", *args, "--section", "2.6", env=env)
    assert run.returncode == 0, run.stderr
    again = json.loads((tmp_path / "out" / "figures" / "seeds.json").read_text())["seeds"]
    assert again == untimed  # 2.6's runs replaced by the same ones; no whole-run seconds
    seed_0 = {what: again["mlp_best"][what][:1] for what in ("val", "test", "best_epoch")}
    cut = {**again, "seeds": [0], "mlp_best": {**again["mlp_best"], **seed_0}}
    seeds_json = tmp_path / "out" / "figures" / "seeds.json"
    seeds_json.write_text(json.dumps({**recorded, "seeds": cut}))  # as if stopped after seed 0
    run = tool("seeds", *args, "--section", "2.6", "--first", "1", env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(seeds_json.read_text())["seeds"] == untimed  # went on from seed 1
    run = tool("seeds", *args, "--section", "2.6", "--first", "1", env=env)  # nothing to go on
    assert run.returncode == 2 and "from seed 1 on" in run.stderr
    run = tool("seeds", *args, "--section", "2.6", "--keep-previous", "2.6 before", env=env)
    assert run.returncode == 0, run.stderr
    kept = json.loads(seeds_json.read_text())["seeds_previous"]  # 2.6's runs, the rest as before
    assert kept["notes"] == {"mlp_spec": "the recipe before", "mlp_best": "2.6 before"}
    assert kept["mlp_spec"] == seeds["mlp_spec"] and kept["mlp_best"] == again["mlp_best"]
    run = tool("seeds", "--seeds", "3", "--quick", "--out", tmp_path / "out", "--section", "2.6")
    assert run.returncode == 2 and "records seeds [0, 1]" in run.stderr


def test_the_ablation_table_compares_each_changed_recipe_with_its_own_note():
    seeds = {"mlp_best": {"val": [0.98, 0.981, 0.982]}, "cnn_best": {"val": [0.994, 0.995, 0.996]}}
    seeds.update(seeds=[0, 1, 2], quick=False)  # as seeds.json records them
    before = {"val": [0.97, 0.971, 0.972], "best_epoch": [9, 9, 9], "epochs": 12}
    previous = {"seeds": [0, 1, 2], "notes": {"mlp_best": "100 epochs"}, "mlp_best": before}
    previous["cnn_best"] = seeds["cnn_best"]  # unchanged since: not compared
    previous["notes"]["cnn_best"] = "an earlier recipe, rerun since"
    comparisons = report.ablation_comparisons({"seeds_previous": previous}, seeds)
    assert list(comparisons) == ["mlp_best_previous"]
    assert comparisons["mlp_best_previous"]["variant"] == "100 epochs"
    assert comparisons["mlp_best_previous"]["difference"] == pytest.approx(-0.01)
    row = report.ablation_table([("mlp_best", comparisons.values(), 10)], seeds).splitlines()[-3]
    assert row.startswith("100 epochs & 3 & 12 & 97.10 $\\pm$ 0.10 (9--9) &  & ")  # no last epoch


@pytest.mark.slow
def test_a_tool_stopped_by_sigterm_says_so_in_one_line_and_leaves_no_temporary(tmp_path):
    data = make_small_data(tmp_path / "data")
    env = dict(os.environ, PYTHONPATH=str(block_torch(tmp_path / "blocked")))
    command = [sys.executable, str(TOOLS / "seeds.py"), "--seeds", "3", "--quick", "--data"]
    command += [str(data), "--out", str(tmp_path / "out")]
    run = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in run.stdout:
        if "[2.6] epoch 1/" in line:
            run.send_signal(signal.SIGTERM)
            break
    _, err = run.communicate(timeout=60)
    assert run.returncode == 128 + signal.SIGTERM
    assert err.strip() == "seeds.py: stopped by SIGTERM; results written so far are kept."
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith((".tmp", ".lock"))]


@pytest.mark.slow
def test_bench_measures_every_kind_side_by_side(tmp_path):
    if P.torch is None:
        pytest.skip("the benchmark compares against torch")
    data = make_small_data(tmp_path / "data", n_train=2000, n_val=300)
    run = tool("bench", "--quick", "--data", data, "--out", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    bench = json.loads((tmp_path / "out" / "figures" / "bench.json").read_text())["bench"]
    assert all(
        bench[kind] > 0
        for kind in ("mlp_numpy", "mlp_torch", "mlp_best", "cnn_best", "cnn_best_before")
    )
    assert bench["numpy_over_torch"] == round(bench["mlp_numpy"] / bench["mlp_torch"], 3)


@pytest.mark.slow
def test_ablation_over_more_seeds_keeps_the_single_runs_of_the_tables(tmp_path):
    data = make_small_data(tmp_path / "data")
    out = tmp_path / "out"
    args = ["--rows", "mlp_strong", "--quick", "--data", data, "--out", out]
    assert tool("ablation", *args).returncode == 0
    run = tool("ablation", *args, "--seeds", "1", "2")
    assert run.returncode == 0, run.stderr
    recorded = json.loads((out / "figures" / "ablation.json").read_text())
    assert set(recorded["ablation"]) == {"mlp_strong"} and recorded["ablation"]["mlp_strong"]
    assert set(recorded["ablation_seeds"]) == {"mlp_strong/seed1", "mlp_strong/seed2"}
    assert [row["seed"] for row in recorded["ablation_seeds"].values()] == [1, 2]


# ---- Interruptions and outputs that do not belong together --------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["report", "submit", "evaluate", "seeds", "ablation", "bench"])
@pytest.mark.parametrize("module", ["torch", "numpy"])
def test_ctrl_c_while_a_tool_imports_is_one_line_and_status_130(tmp_path, name, module):
    """torch is imported by Project3.py within the tool's imports; numpy by the tool first."""
    (tmp_path / module).mkdir()
    (tmp_path / module / "__init__.py").write_text("raise KeyboardInterrupt\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    run = tool(name, "--help", env=env)
    assert run.returncode == 130 and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.endswith(": interrupted.\n") and "Traceback" not in run.stderr


def test_ctrl_c_inside_a_seed_run_is_one_line_and_status_130(tmp_path, monkeypatch, capsys):
    seeds = import_path("seeds", TOOLS / "seeds.py")

    def interrupted(argv):
        print("Project3.py: interrupted; the files finished so far are whole.", file=sys.stderr)
        return 130

    monkeypatch.setattr(seeds.P, "main", interrupted)
    data = make_small_data(tmp_path / "data")
    args = ["--quick", "--data", str(data), "--out", str(tmp_path / "out")]
    assert seeds.run_tool(seeds.main, args) == 130
    assert capsys.readouterr().err.count("\n") == 1


def pdf_bytes(out):
    return (out / "report.pdf").read_bytes() if (out / "report.pdf").exists() else None


@pytest.mark.parametrize("case", ["unfinished", "confusion", "templates", "weights"])
def test_the_report_refuses_outputs_that_do_not_belong_together(quick_run, tmp_path, capsys, case):
    out = tmp_path / "out"
    shutil.copytree(quick_run[0] / "quick", out)
    results = json.loads((out / "figures" / "results.json").read_text())
    if case == "unfinished":
        results["unfinished"] = {"2.6": "a run"}
        expected = "section 2.6 did not finish"
    elif case == "confusion":
        results["mlp_confusion"]["run"] = "another run"
        expected = "the record of section 2.7"
    elif case == "templates":
        results["mlp_templates"]["mlp_spec"]["run"] = "another run"
        expected = "the record of section 2.8"
    else:
        results["cnn_best"]["run"] = "another run"
        results["cnn_confusion"]["run"] = "another run"
        expected = "the weights of section 3.4 in"
    (out / "figures" / "results.json").write_text(json.dumps(results))
    before = pdf_bytes(out)
    assert report.run_tool(report.main, ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and before == pdf_bytes(out)


# ---- One command that remakes every number ------------------------------------------------------


@pytest.mark.slow
def test_remake_runs_every_step_on_quick_settings_into_its_folder(tmp_path):
    data = make_small_data(tmp_path / "data")
    out = tmp_path / "out"
    run = tool("remake", "--quick", "--out", out, "--data", data, "--skip", "stacks", timeout=900)
    assert run.returncode == 0, run.stderr
    steps = [line for line in run.stdout.splitlines() if re.match(r"\[\d/\d\] ", line)]
    names = ["run", "seeds", "ablation", "bench", "report"]
    assert [line.split()[1].rstrip(":") for line in steps[::2]] == names
    assert all("done in" in line for line in steps[1::2])
    for name in ("results", "seeds", "ablation", "bench"):
        assert (out / "figures" / f"{name}.json").is_file()
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"


@pytest.mark.slow
def test_remake_stops_at_the_first_failing_step_with_one_sentence(tmp_path):
    data = make_small_data(tmp_path / "data")
    (data / "MNIST_val_labels.npy").write_text("not labels")
    run = tool("remake", "--quick", "--out", tmp_path / "out", "--data", data)
    assert run.returncode == 2 and "step run failed with status 2" in run.stderr
    assert run.stderr.count("\n") == 2  # the run's own sentence, then the remake's
    assert "[1/6] run: started" in run.stdout and "seeds" not in run.stdout


def test_remake_runs_the_stacks_that_nox_has_made_and_says_when_there_are_none(monkeypatch):
    remake = import_path("remake", TOOLS / "remake.py")
    args = remake.main.__globals__["argparse"].Namespace(quick=True, data=None)
    monkeypatch.setattr(remake, "STACKS", {"oldest_stack": "no/such/env"})
    assert remake.commands("stacks", args, ROOT / "quick") == []
    monkeypatch.setattr(remake, "STACKS", {"oldest_stack": ".venv"})
    (command,) = remake.commands("stacks", args, ROOT / "quick")
    assert command[-4:] == ["oldest_stack", "--out", str(ROOT / "quick"), "--quick"]


def test_a_tool_prints_a_path_its_console_cannot_encode_escaped(tmp_path):
    """A Windows console (cp1252) and a folder named in Polish: submit.py's line is escaped."""
    out = tmp_path / "Łódź"
    out.mkdir()
    built_report(out)
    env = dict(os.environ, PYTHONIOENCODING="cp1252")
    command = [sys.executable, str(TOOLS / "submit.py"), "--id", "ann123", "--out", str(out)]
    run = subprocess.run(command, capture_output=True, env=env)
    assert run.returncode == 0, run.stderr
    assert "\\u0141\xf3d\\u017a" in run.stdout.decode("cp1252")  # Ł and ź escaped, ó as is


@pytest.mark.slow
def test_bench_measures_a_busy_machine_with_default_threads_and_one(tmp_path):
    if P.torch is None:
        pytest.skip("3.4's epoch needs torch")
    data = make_small_data(tmp_path / "data", n_train=2000, n_val=300)
    run = tool("bench", "--quick", "--busy", "--data", data, "--out", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    busy = json.loads((tmp_path / "out" / "figures" / "bench.json").read_text())["bench_busy"]
    bench = import_path("bench", TOOLS / "bench.py")
    assert set(bench.BUSY_CONDITIONS) <= set(busy)
    assert all(busy[c][kind] > 0 for c in bench.BUSY_CONDITIONS for kind in bench.BUSY_KINDS)
    assert (
        "while True"
        not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    )
