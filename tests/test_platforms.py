"""Windows, macOS and the IDEs students use, simulated on Linux: a console that cannot encode a
path, a configured GUI backend that cannot load, a file another program holds open, the script run
in-process as Spyder's run button and Jupyter's %run do, code without __file__, and the tools on a
platform without SIGHUP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, P, block_torch, grader_folder, run_script


def env_with(tmp_path, **extra):
    return dict(os.environ, PYTHONPATH=str(block_torch(tmp_path / "blocked")), **extra)


@pytest.mark.slow
def test_a_console_that_cannot_encode_the_path_shows_it_escaped(tmp_path):
    """Windows encodes redirected output in its ANSI code page (cp1252), which lacks the L of
    Lukasz; the run still ends with its summary and status 0."""
    folder, elsewhere = grader_folder(tmp_path)
    out = tmp_path / "\u0141ukasz" / "q"
    command = [sys.executable, str(folder / "Project3.py"), "--part", "mlp", "--quick"]
    command += ["--out", str(out)]
    env = env_with(tmp_path, PYTHONIOENCODING="cp1252")
    run = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True)
    assert run.returncode == 0, run.stderr.decode("cp1252", "replace")
    assert b"\\u0141ukasz" in run.stdout and b"Traceback" not in run.stderr
    assert (out / "figures" / "results.json").is_file()


@pytest.mark.slow
def test_a_configured_gui_backend_that_cannot_load_does_not_stop_the_run(tmp_path):
    """MPLBACKEND (or a matplotlibrc) naming a backend whose toolkit is missing: figures are drawn
    without pyplot, so no backend is ever loaded."""
    folder, elsewhere = grader_folder(tmp_path)
    command = [sys.executable, str(folder / "Project3.py"), "--section", "2.5", "--quick"]
    env = env_with(tmp_path, MPLBACKEND="Qt5Agg")
    run = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (folder / "quick" / "figures" / "mlp_study.png").stat().st_size > 1000


def test_a_write_retries_while_another_program_holds_the_file(tmp_path, monkeypatch):
    target = tmp_path / "mlp_study.png"
    target.write_text("old")
    real_replace = Path.replace
    refusals = []

    def replace_refused_twice(self, other):
        if len(refusals) < 2:
            refusals.append(self)
            raise PermissionError(13, "Permission denied", str(other))
        return real_replace(self, other)

    monkeypatch.setattr(Path, "replace", replace_refused_twice)
    P.write_whole(target, Path.write_text, "new")
    assert target.read_text() == "new" and len(refusals) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp_study.png"]


def test_a_file_held_open_for_good_is_one_sentence_naming_it(tmp_path, monkeypatch):
    target = tmp_path / "mlp_study.pdf"
    target.write_text("old")

    def replace_refused(self, other):
        raise PermissionError(13, "Permission denied", str(other))

    monkeypatch.setattr(Path, "replace", replace_refused)
    monkeypatch.setattr(P.time, "sleep", lambda seconds: None)  # no waiting
    with pytest.raises(P.UserError) as raised:
        P.write_whole(target, Path.write_text, "new")
    message = str(raised.value)
    assert str(target) in message and "another program may hold it open" in message
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_temporaries_are_no_longer_than_the_names_they_become(tmp_path):
    names = []

    def remember(tmp):
        names.append(tmp.name)
        tmp.write_text("x")

    finals = ("mlp_templates.pdf", "mlp.npz", "results.json")
    for name in finals:
        P.write_whole(tmp_path / name, remember)
    assert all(len(tmp) <= len(final) for tmp, final in zip(names, finals))


IN_PROCESS = """
import runpy, sys
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt
plt.rcParams["font.size"] = 13.0
plt.figure()
before = (matplotlib.get_backend(), dict(plt.rcParams), plt.get_fignums())
sys.argv = [sys.argv[1], "--part", "mlp", "--quick", "--out", sys.argv[2]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as stop:
    assert stop.code == 0, stop.code
after = (matplotlib.get_backend(), dict(plt.rcParams), plt.get_fignums())
assert before == after, [k for k in before[1] if before[1][k] != after[1][k]]
print("session unchanged")
"""


def test_a_figure_drawn_again_is_the_same_file_byte_for_byte(tmp_path):
    for out in (tmp_path / "first", tmp_path / "again"):
        (out / "figures").mkdir(parents=True)
        fig = P.new_figure(figsize=(2, 2))
        fig.subplots().plot([0, 1, 4], label="$W_1$")
        P.save_figure(fig, out, "line")
    for ext in ("pdf", "png"):
        first, again = (tmp_path / run / "figures" / f"line.{ext}" for run in ("first", "again"))
        assert first.read_bytes() == again.read_bytes()
    pdf = (tmp_path / "first" / "figures" / "line.pdf").read_bytes()
    assert b"CreationDate" not in pdf  # no date: a rerun's PDF is no change


@pytest.mark.slow
def test_run_in_process_as_spyder_and_percent_run_do_it_leaves_the_session_as_it_was(tmp_path):
    folder, elsewhere = grader_folder(tmp_path)
    command = [sys.executable, "-c", IN_PROCESS, str(folder / "Project3.py"), str(tmp_path / "q")]
    run = subprocess.run(command, cwd=elsewhere, env=env_with(tmp_path), capture_output=True)
    assert run.returncode == 0, run.stderr.decode()
    assert b"session unchanged" in run.stdout
    assert "mlp_templates" in json.loads((tmp_path / "q" / "figures" / "results.json").read_text())


WITHOUT_FILE = """
import sys
source = open(sys.argv[1]).read()
sys.argv = ["Project3.py", "--section", "2.5", "--quick"]
try:
    exec(compile(source, "<cell>", "exec"), {"__name__": "__main__"})
except SystemExit as stop:
    assert stop.code == 0, stop.code
"""


@pytest.mark.slow
def test_code_run_without_a_file_finds_the_data_in_the_working_folder(tmp_path):
    """Pasted into a notebook cell or run with exec(): no __file__, so the working folder."""
    folder, _ = grader_folder(tmp_path)
    command = [sys.executable, "-c", WITHOUT_FILE, str(folder / "Project3.py")]
    run = subprocess.run(command, cwd=folder, env=env_with(tmp_path), capture_output=True)
    assert run.returncode == 0, run.stderr.decode()
    assert (folder / "quick" / "figures" / "mlp_study.png").is_file()


NO_SIGHUP = """
import runpy, signal, sys
del signal.SIGHUP  # as on Windows
sys.path.insert(0, str(__import__("pathlib").Path(sys.argv[1]).parent))  # as `python tools/...`
sys.argv = [sys.argv[1], "--weights", sys.argv[2], "--data", sys.argv[3]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as stop:
    assert stop.code == 0, stop.code
"""


def test_the_tools_run_where_the_platform_has_no_sighup(tmp_path):
    tool = ROOT / "tools" / "evaluate.py"
    command = [sys.executable, "-c", NO_SIGHUP, str(tool), str(ROOT / "weights")]
    command.append(str(ROOT / "Project3_data"))
    run = subprocess.run(command, env=env_with(tmp_path), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert '"mlp": {"accuracy"' in run.stdout


@pytest.mark.slow
def test_messages_name_absolute_paths_and_the_skip_note_comes_first(tmp_path):
    folder, elsewhere = grader_folder(tmp_path)
    (elsewhere / "a_file").write_text("not a folder")
    bad = run_script(
        folder / "Project3.py",
        "--quick",
        "--out",
        "a_file/q",
        cwd=elsewhere,
        blocked=block_torch(tmp_path / "blocked"),
    )
    assert bad.returncode == 2 and f"--out {elsewhere / 'a_file' / 'q'}:" in bad.stderr
    run = run_script(
        folder / "Project3.py", "--quick", cwd=elsewhere, blocked=block_torch(tmp_path / "blocked")
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("Part 2 (3.1-3.4) is skipped: it needs PyTorch")
    assert lines[-1].strip().startswith("Part 2 (3.1-3.4) is skipped")
