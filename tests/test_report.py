"""The report: results.tex from results.json, the PDF built from the committed results, and its
text checked for every section and every accuracy; the submission zip."""
import json
import re
import shutil
import subprocess
import zipfile

import pytest

from conftest import P, ROOT

SECTIONS = ["2.1", "2.2", "2.3.1", "2.3.2", "2.4", "2.5", "2.6", "2.7", "2.8", "3.1", "3.2", "3.3", "3.4",
            "Credits and collaboration"]


def test_results_tex_has_a_macro_for_each_accuracy():
    results = json.loads((ROOT / "figures" / "results.json").read_text())
    tex = P.results_tex(results)
    for prefix, key in (("MlpSpec", "mlp_spec"), ("MlpBest", "mlp_best"), ("CnnSpec", "cnn_spec"),
                        ("CnnBest", "cnn_best")):
        assert f"\\newcommand{{\\{prefix}Test}}{{{P.pct(results[key]['test_accuracy'])}}}" in tex
        assert f"\\newcommand{{\\{prefix}Val}}{{{P.pct(results[key]['val_accuracy'])}}}" in tex


@pytest.mark.skipif(shutil.which("pdflatex") is None or shutil.which("pdftotext") is None,
                    reason="needs LaTeX and poppler (CI installs both)")
def test_report_builds_from_the_committed_results_and_shows_every_number(tmp_path):
    shutil.copytree(ROOT / "figures", tmp_path / "figures")
    assert P.main(["--part", "report", "--out", str(tmp_path)]) == 0
    pdf = tmp_path / "report.pdf"
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for section in SECTIONS:
        assert section in text, f"section {section} missing from the PDF"
    results = json.loads((ROOT / "figures" / "results.json").read_text())
    for key in ("mlp_spec", "mlp_best", "cnn_spec", "cnn_best"):
        for field in ("test_accuracy", "val_accuracy"):
            assert P.pct(results[key][field]) in text, f"{key} {field} missing from the PDF"
    assert "??" not in text  # no broken reference or undefined macro


def test_zip_holds_exactly_the_script_and_the_report(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "HERE", tmp_path)
    shutil.copy(ROOT / "Project3.py", tmp_path / "Project3.py")
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.5 stand-in")
    assert P.main(["--part", "zip", "--id", "xyz123"]) == 0
    with zipfile.ZipFile(tmp_path / "xyz123_Project3.zip") as z:
        assert sorted(z.namelist()) == ["Project3.py", "report.pdf"]


@pytest.mark.parametrize("bad_id", ["", "../x", "a b", "x;rm", "1abc"])
def test_zip_refuses_an_id_that_is_not_a_plain_identifier(bad_id, capsys):
    assert P.main(["--part", "zip", "--id", bad_id]) == 2
    assert "--id must be a plain identifier" in capsys.readouterr().err


def test_report_tex_types_no_accuracy_by_hand():
    """Accuracies look like 98.10: none may be typed into report.tex; they come from results.tex."""
    tex = (ROOT / "report.tex").read_text()
    assert re.findall(r"\b\d{2}\.\d{1,2}\b", tex) == []
    assert r"\input{figures/results.tex}" in tex
