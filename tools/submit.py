"""The submission: ID_Project3.zip holding exactly Project3.py and report.pdf, as the assignment asks
(no data, no weights). The ID is the one set with tools/report.py --id (tools/author.json) unless --id
gives another.

    python tools/submit.py [--id xyz123] [--out DIR]
"""
import argparse
import json
import re
import sys
import zipfile

from common import P, ROOT, out_dir, run_tool

AUTHOR = ROOT / "tools" / "author.json"


def check_id(directory_id):
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", directory_id or ""):
        raise P.UserError(f"the directory ID must be a plain identifier such as xyz123 (a letter, then letters, "
                          f"digits or _), found {directory_id!r}.")
    return directory_id


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--id", help="your directory ID (default: the one in tools/author.json)")
    p.add_argument("--out", help="folder holding report.pdf, where the zip is written (default: the repository)")
    args = p.parse_args(argv)
    directory_id = check_id(json.loads(AUTHOR.read_text())["id"] if args.id is None else args.id)
    out = out_dir(args.out)
    pdf = out / "report.pdf"
    if not pdf.is_file():
        raise P.UserError(f"{pdf} does not exist yet: build it with `python tools/report.py` first.")
    path = out / f"{directory_id}_Project3.zip"

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(ROOT / "Project3.py", "Project3.py")
            z.write(pdf, "report.pdf")
    P.write_atomically(path, write)
    print(f"wrote {path}: Project3.py and report.pdf")


if __name__ == "__main__":
    sys.exit(run_tool(main))
