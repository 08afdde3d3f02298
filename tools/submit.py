"""The submission: ID_Project3.zip holding exactly Project3.py and report.pdf, as the assignment
asks (no data, no weights). The ID is the one set with tools/report.py --id (kept in
tools/author.json) unless --id gives another; with only the placeholder there, it writes nothing.

    python tools/submit.py [--id xyz123] [--out DIR]
"""

import argparse
import json
import sys
import zipfile
from pathlib import Path

try:  # Ctrl-C while importing (torch takes a second or two): one line and status 130
    from report import check_id, is_placeholder, read_author, sha256

    from common import ROOT, P, out_dir, run_tool
except KeyboardInterrupt:
    print(f"{Path(__file__).name}: interrupted.", file=sys.stderr)
    sys.exit(130)

SET_IDENTITY = (
    "set your name and directory ID first with "
    '`python tools/report.py --id YOURID --author "Your Name"` (which rebuilds report.pdf with '
    "them), or pass --id"
)


def write_zip(tmp, pdf):
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(ROOT / "Project3.py", "Project3.py")
        archive.write(pdf, "report.pdf")


def check_title(pdf, directory_id):
    """report.pdf must be the one tools/report.py last built, titled with the student's name and
    the ID being zipped (figures/title.json records what it put on the title)."""
    rebuild = f'run `python tools/report.py --id {directory_id} --author "Your Name"` first'
    try:
        title = json.loads((pdf.parent / "figures" / "title.json").read_text())
        built = title["sha256"] == sha256(pdf)
    except (OSError, ValueError, KeyError, TypeError):
        built = False
    if not built:
        problem = "is not the report that tools/report.py last built (or no record of it is left)"
    elif is_placeholder(title):
        problem = "shows YOUR NAME or YOUR ID on its title, not yours"
    elif title["id"] != directory_id:
        problem = f"is titled with the ID {title['id']}, not {directory_id}"
    else:
        return
    raise P.UserError(f"{pdf} {problem}: {rebuild}.")


def main(argv=None):
    parser = argparse.ArgumentParser(description="ID_Project3.zip: Project3.py and report.pdf.")
    parser.add_argument("--id", help="your directory ID (default: the one in tools/author.json)")
    parser.add_argument("--out", help="folder holding report.pdf; the zip is written there")
    args = parser.parse_args(argv)
    if args.id is not None:
        directory_id = check_id(args.id)
    else:
        directory_id = read_author()["id"]
        if directory_id == "YOUR ID":
            raise P.UserError(f"tools/author.json holds no directory ID yet: {SET_IDENTITY}.")
    out = out_dir(args.out, writing=True)
    pdf = out / "report.pdf"
    if not pdf.is_file():
        raise P.UserError(f"{pdf} does not exist yet: build it with `python tools/report.py`.")
    with open(pdf, "rb") as file:
        if file.read(5) != b"%PDF-":
            raise P.UserError(f"{pdf} is not a PDF (empty or damaged): rebuild it first.")
    check_title(pdf, directory_id)
    path = out / f"{directory_id}_Project3.zip"
    P.write_whole(path, write_zip, pdf)
    P.print_safely(f"wrote {path}: Project3.py and report.pdf")


if __name__ == "__main__":
    sys.exit(run_tool(main))
