"""The supported range, tested at both ends: `nox` runs every session, `nox -s oldest` one of them.

Project3.py promises Python 3.8-3.13, numpy 1.19+, matplotlib 3.3+ and torch 1.7+. The pinned
stack of requirements.txt (Python 3.11) is tested by README's test command; these sessions test the
two ends:

  oldest  Python 3.8, numpy 1.19.5, matplotlib 3.3.4, torch 1.7.1: a grader's setup in spring 2021
  newest  Python 3.13 with the newest numpy, matplotlib and torch that install here

oldest runs every test that applies to the graded file; newest, whose versions are a step from the
pinned stack's (numpy 2.5 against 2.4, torch 2.14 against 2.13, the same matplotlib), the fast tier
of every test, so that CI stays well under half an hour. Each then runs the grader's quick run:
Project3.py copied alone beside the data and started from another folder. The interpreters come
from pyenv (.ci/run makes python3.8 and python3.13 visible); pip keeps its wheel cache and nox
reuses an existing environment, so a second run installs nothing.
"""

import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
nox.options.sessions = ["oldest", "newest"]
nox.options.reuse_existing_virtualenvs = True  # torch is large: install it once per machine
nox.options.error_on_missing_interpreters = True  # a stack that cannot run is a failure, not a skip

OLDEST = [
    "numpy==1.19.5",
    "matplotlib==3.3.4",
    "Pillow==8.4.0",  # Pillow 9+ needs numpy >= 1.21 and breaks `import matplotlib` under 1.19
    "torch==1.7.1",
    "pytest==8.3.5",  # the last pytest for Python 3.8
]
NEWEST = [  # the newest releases that installed on 2026-11-26; bump them as new ones appear
    "numpy==2.5.5",
    "matplotlib==3.11.2",
    "torch==2.14.1",  # PyPI has 2.15.0, but this workplace's pip caps torch at 2.14.1
    "pytest==9.2.0",
    "scipy==1.17.1",  # the tools' statistics: the newest session runs the tools' fast tests too
]


def graders_quick_run(session):
    """`python Project3.py --quick`, the script alone beside the data, started from another
    folder, as a grader with this stack would run it; then tools/evaluate.py on its weights."""
    scratch = Path(session.create_tmp()).resolve() / "grader"
    shutil.rmtree(scratch, ignore_errors=True)
    folder = scratch / "submission"
    elsewhere = scratch / "elsewhere"
    folder.mkdir(parents=True)
    elsewhere.mkdir()
    shutil.copy(ROOT / "Project3.py", folder / "Project3.py")
    os.symlink(ROOT / "Project3_data", folder / "Project3_data")
    with session.chdir(elsewhere):
        session.run("python", str(folder / "Project3.py"), "--quick")
    weights = folder / "quick" / "weights"
    evaluate = ROOT / "tools" / "evaluate.py"
    session.run(
        "python", str(evaluate), "--weights", str(weights), "--data", str(folder / "Project3_data")
    )


@nox.session(python="3.8", venv_backend="venv")  # virtualenv 21+ cannot seed 3.8
def oldest(session):
    session.install(*OLDEST)
    session.run(
        "python",
        "-c",
        "import numpy, matplotlib, torch; print(numpy.__version__, "
        "matplotlib.__version__, torch.__version__)",
    )
    # The tools (report, bench, ablation, ...) are developer tooling on the pinned stack.
    session.run("python", "-m", "pytest", "-q", "tests", "--ignore=tests/test_tools.py")
    graders_quick_run(session)


@nox.session(python="3.13", venv_backend="venv")
def newest(session):
    session.install(*NEWEST)
    session.run(
        "python",
        "-c",
        "import numpy, matplotlib, torch; print(numpy.__version__, "
        "matplotlib.__version__, torch.__version__)",
    )
    # The fast tier, the tools' included; the end-to-end tests run on the pinned and oldest stacks
    session.run("python", "-m", "pytest", "-q", "tests", "-m", "not slow")
    graders_quick_run(session)
