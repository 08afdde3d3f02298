"""What the tools share: Project3.py imported from the repository root, and reading/writing its results.

The tools import Project3; Project3 never imports them.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import Project3 as P  # noqa: E402


def out_dir(given, writing=False):
    """--out as the tools take it: the folder holding figures/results.json (default: the repository);
    writing: make its figures/ folder if it is missing."""
    out = Path(given).resolve() if given else ROOT
    if writing:
        (out / "figures").mkdir(parents=True, exist_ok=True)
    return out


def run_tool(main, argv=None):
    """Run a tool's main() with Project3's error conventions: one sentence and exit 2, or 130 on Ctrl-C."""
    try:
        main(argv)
    except P.UserError as err:
        print(f"{Path(sys.argv[0]).name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{Path(sys.argv[0]).name}: interrupted; results written so far are kept.", file=sys.stderr)
        return 130
    return 0
