"""report.pdf from report.tex and the numbers the runs wrote to figures/results.json.

    python tools/report.py [--out DIR] [--id xyz123] [--author "A. Student"]

Writes figures/results.tex (every number the report prints, as \\resdef{Name}{value}) and the generated
tables, then builds the PDF with latexmk in a temporary folder and moves it onto DIR/report.pdf only
if the build succeeded. A number whose run has not been made yet (tools/seeds.py, tools/ablation.py,
tools/bench.py) prints as a visible placeholder, never as an undefined macro. --id and --author are
remembered in tools/author.json, which tools/submit.py reads too.
"""
import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import P, ROOT, out_dir, run_tool
from submit import AUTHOR, check_id

TEX = ROOT / "report.tex"
NETWORKS = dict(MlpSmall="mlp_spec_2000", MlpSpec="mlp_spec", MlpBest="mlp_best", CnnSmall="cnn_spec_2000",
                CnnSpec="cnn_spec", CnnBest="cnn_best")
CREDIT = {key: base for key, _, base in P.NETWORKS if base}  # extra credit above these, as Project3 prints it


def pct(fraction, digits=2):
    return f"{100 * fraction:.{digits}f}"


def tex_number(value):
    """0.003 -> 0.003, 2e-05 -> 2\\times10^{-5} (for math mode), 35 -> 35."""
    text = f"{value:g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa}\\times10^{{{int(exponent)}}}"


def thousands(n):
    return f"{n:,}".replace(",", "{,}")


def wilson(p, n, z=1.96):
    """The 95 % Wilson score interval of a binomial proportion p observed on n trials."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def mean_sd(values):
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def network_macros(prefix, r, seeds):
    h = r["history"]
    m = {"Val": pct(r["val_accuracy"]), "BestVal": pct(r["best_val_accuracy"]), "FinalVal": pct(r["final_val_accuracy"]),
         "FinalTrain": pct(r["final_train_accuracy"]), "Epochs": str(r["epochs"]), "Steps": thousands(r["steps"]),
         "BestEpoch": str(r["best_epoch"]), "Seconds": f"{r['train_seconds']:.0f}",
         "Gap": f"{100 * (r['final_train_accuracy'] - r['final_val_accuracy']):.1f}",
         "SecondsPerEpoch": f"{r['train_seconds'] / r['epochs']:.2f}",
         "StepsPerEpoch": str(h["step"][0]), "FinalTrainLoss": f"{h['train_loss'][-1]:.3f}",
         "FinalValLoss": f"{h['val_loss'][-1]:.3f}"}
    low = min(range(len(h["val_loss"])), key=h["val_loss"].__getitem__)
    m.update(ValLossMin=f"{h['val_loss'][low]:.3f}", ValLossMinStep=thousands(h["step"][low]),
             ValLossMinEpoch=str(low + 1), ValAtValLossMin=pct(h["val_acc"][low]))
    later = [i for i in range(1, len(h["val_acc"])) if max(h["val_acc"][:i]) >= 0.9]  # once it has learned
    drop = max(later, key=lambda i: h["val_acc"][i - 1] - h["val_acc"][i], default=0)
    m.update(DropStep=thousands(h["step"][drop]), DropVal=pct(h["val_acc"][drop]), DropFrom=pct(h["val_acc"][drop - 1]))
    chance = [s for s, a in zip(h["step"], h["val_acc"]) if a < 0.2]  # near 10 %, before the network learns
    m["ChanceSteps"] = thousands(chance[-1]) if chance else "0"
    full = [s for s, a in zip(h["step"], h["train_acc"]) if a == 1.0]
    m["TrainFullStep"] = thousands(full[0]) if full else "never"
    if "train_n" in r:
        m["TrainN"] = thousands(r["train_n"])
    if "test_accuracy" in r:
        p, n = r["test_accuracy"], r["test_n"]
        lo, hi = wilson(p, n)
        m.update(Test=pct(p), TestN=thousands(n), TestErrors=str(round((1 - p) * n)), TestLow=pct(lo), TestHigh=pct(hi),
                 TestSe=pct(math.sqrt(p * (1 - p) / n)))
    if NETWORKS[prefix] in CREDIT and "test_accuracy" in r:
        m["Credit"] = f"{max(100 * r['test_accuracy'] - CREDIT[NETWORKS[prefix]], -20):+.2f}"
    for name, value in {**r.get("config", {}), **(r.get("config", {}).get("augment") or {})}.items():
        if not isinstance(value, dict):
            m[name.replace("_", " ").title().replace(" ", "")] = tex_number(value)  # LrFinal, RotateDeg, ...
    s = seeds.get(NETWORKS[prefix])
    if s:
        for what in ("val", "test"):
            mean, sd = mean_sd(s[what])
            m[f"Seed{what.title()}"] = f"{pct(mean)} $\\pm$ {pct(sd)}"
            m[f"Seed{what.title()}Sd"], m[f"Seed{what.title()}Mean"] = pct(sd), pct(mean)
            m[f"Seed{what.title()}Min"], m[f"Seed{what.title()}Max"] = pct(min(s[what])), pct(max(s[what]))
        m["SeedN"] = str(len(s["val"]))
    return {prefix + k: v for k, v in m.items()}


def ablation_table(rows, group, seeds, epochs):
    """Variants of one training against its seed runs, with the noise a difference must clear: twice the
    standard deviation of the difference between one run and the mean of the seed runs. The 2.6 and 3.4
    recipes keep their best epoch, so their rows compare best epochs; the specified trainings keep their
    last epoch, so theirs compare last epochs."""
    key = "best_val_accuracy" if group.endswith("best") else "final_val_accuracy"
    s = seeds.get(group)
    lines = [r"\begin{tabular}{lrrrr}", r"\toprule",
             r"training & epochs & best (epoch) & last & difference (points) \\", r"\midrule"]
    if s:
        mean, sd = mean_sd(s["val"])
        noise = 2 * sd * math.sqrt(1 + 1 / len(s["val"]))
        name = "chosen recipe" if group.endswith("best") else "as specified"
        spread = f"{pct(mean)} $\\pm$ {pct(sd)}"
        best, last = (spread, "") if group.endswith("best") else ("", spread)
        lines.append(f"{name}, {len(s['val'])} seeds (mean $\\pm$ sd) & {epochs} & {best} & {last} & "
                     f"noise: $\\pm${pct(noise)} \\\\")
    for row in rows:
        diff = ""
        if s:
            d = 100 * (row[key] - mean)
            diff = f"{d:+.2f}" + ("" if abs(d) > 100 * noise else " (within noise)")
        lines.append(f"{row['variant']} & {row['epochs']} & {pct(row['best_val_accuracy'])} ({row['best_epoch']}) & "
                     f"{pct(row['final_val_accuracy'])} & {diff} \\\\")
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"]) + "\n"


def cnn_table(arch):
    dims = lambda shape: "$" + r"\times".join(map(str, shape)) + "$"  # noqa: E731
    lines = [r"\begin{tabular}{llccccr}", r"\toprule",
             r"step & type & kernel & stride & padding & input $\to$ output & parameters \\", r"\midrule"]
    for r in arch["layers"]:
        kernel = f"${r['kernel_size']}\\times{r['kernel_size']}$" if "kernel_size" in r else ""
        lines.append(f"{r['layer']} & {r['type']} & {kernel} & {r.get('stride', '')} & {r.get('padding', '')} & "
                     f"{dims(r['input'])} $\\to$ {dims(r['output'])} & {thousands(r['params'])} \\\\")
    lines += [r"\midrule", f"total & & & & & & {thousands(arch['total_params'])} \\\\", r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def escape(text):
    return "".join("\\" + c if c in "&%$#_{}" else c for c in text)


def generate(results, author):
    """(macros, {file name: LaTeX}) from results.json and the author's name and ID."""
    seeds = results.get("seeds", {})
    m = dict(Author=escape(author["author"]), DirectoryId=escape(author["id"]))
    for prefix, key in NETWORKS.items():
        if key in results:
            m.update(network_macros(prefix, results[key], seeds))
    small, cnn_small = results.get("mlp_spec_2000"), results.get("cnn_spec_2000")
    if small and cnn_small:  # the MLP on 2000 images after as many steps as the CNN took
        at = max(i for i, s in enumerate(small["history"]["step"]) if s <= cnn_small["steps"])
        m.update(MlpSmallValAtCnnSteps=pct(small["history"]["val_acc"][at]),
                 MlpSmallTrainAtCnnSteps=pct(small["history"]["train_acc"][at]))
    for prefix, key in (("Mlp", "mlp_confusion"), ("Cnn", "cnn_confusion")):
        if key in results:
            c = results[key]
            acc = c["per_class_accuracy"]
            order = sorted(range(10), key=acc.__getitem__)
            m.update({f"{prefix}PerClass": " & ".join(pct(a, 1) for a in acc),
                      f"{prefix}Hardest": str(order[0]), f"{prefix}HardestAcc": pct(acc[order[0]], 1),
                      f"{prefix}SecondHardest": str(order[1]), f"{prefix}SecondHardestAcc": pct(acc[order[1]], 1),
                      f"{prefix}Easiest": str(order[-1]), f"{prefix}EasiestAcc": pct(acc[order[-1]], 1),
                      f"{prefix}HardestSe": pct((acc[order[0]] * (1 - acc[order[0]]) / sum(c["matrix"][order[0]])) ** 0.5, 1),
                      f"{prefix}Errors": str(sum(sum(row) for row in c["matrix"]) - sum(c["matrix"][i][i] for i in range(10))),
                      f"{prefix}TopCount": str(c["top_confusions"][0]["count"]),
                      f"{prefix}TopShare": str(sum(t["count"] for t in c["top_confusions"][:6])),
                      f"{prefix}RepeatedConfusions": ", ".join(f"{t['true']}$\\to${t['predicted']} ({t['count']})"
                                                               for t in c["top_confusions"] if t["count"] > 1),
                      f"{prefix}TopConfusions": ", ".join(f"{t['true']}$\\to${t['predicted']} ({t['count']})"
                                                          for t in c["top_confusions"][:6])})
    for prefix, key in (("Mlp", "mlp_confusion"), ("Cnn", "cnn_confusion")):
        if key in results:  # the digit most often predicted wrongly, and how often
            C = results[key]["matrix"]
            wrong = [sum(C[i][j] for i in range(10)) - C[j][j] for j in range(10)]
            m.update({f"{prefix}MostPredicted": str(wrong.index(max(wrong))), f"{prefix}MostPredictedCount": str(max(wrong))})
    if "distortions" in results:
        m.update(DistortedInkImages=pct(results["distortions"]["images_inking_blank"], 1),
                 DistortedInkPixel=pct(results["distortions"]["per_blank_pixel"], 2))
    if "mlp_templates" in results:
        t = results["mlp_templates"]
        m.update(BlankPixels=str(t["blank_pixels"]), SpecRmsBlank=f"{t['mlp_spec']['rms_blank']:.3f}",
                 SpecRmsInked=f"{t['mlp_spec']['rms_inked']:.3f}", BestRmsBlank=f"{t['mlp_best']['rms_blank']:.2f}",
                 BestRmsInked=f"{t['mlp_best']['rms_inked']:.2f}")
    if "cnn_architecture" in results:
        m["CnnParams"] = thousands(results["cnn_architecture"]["total_params"])
    seconds = results.get("seconds", {})
    if seconds:
        total = sum(seconds.values())
        m.update(GraderSeconds=f"{total:.0f}", GraderMinutes=f"{total / 60:.1f}",
                 PartOneSeconds=f"{sum(v for k, v in seconds.items() if k[0] == '2'):.0f}",
                 PartTwoSeconds=f"{sum(v for k, v in seconds.items() if k[0] == '3'):.0f}")
    if seeds.get("seeds"):
        m.update(SeedLast=str(seeds["seeds"][-1]))
    for key, row in results.get("ablation", {}).items():
        name = "Abl" + key.replace("_", " ").title().replace(" ", "")
        if row["group"] in seeds:  # against the seed runs' mean, as in the ablation tables
            stat = "best_val_accuracy" if row["group"].endswith("best") else "final_val_accuracy"
            m[name + "Diff"] = f"{100 * (row[stat] - mean_sd(seeds[row['group']]['val'])[0]):+.2f}"
        m.update({name + "Best": pct(row["best_val_accuracy"]), name + "BestEpoch": str(row["best_epoch"]),
                  name + "Last": pct(row["final_val_accuracy"]), name + "Epochs": str(row["epochs"]),
                  name + "LastTrain": pct(row["final_train_accuracy"]),
                  name + "LastGap": f"{100 * (row['final_train_accuracy'] - row['final_val_accuracy']):.1f}"})
    if "bench" in results:
        b = results["bench"]
        m.update(BenchNumpy=f"{b['mlp_numpy']:.3f}", BenchTorch=f"{b['mlp_torch']:.3f}",
                 BenchRatio=f"{b['numpy_over_torch']:.2f}", BenchMlpBest=f"{b['mlp_best']:.2f}",
                 BenchCnnBest=f"{b['cnn_best']:.2f}", BenchCnnPlain=f"{b['cnn_plain']:.2f}",
                 BenchCnnRatio=f"{b['cnn_over_plain']:.2f}")
    tables = {}
    if "cnn_architecture" in results:
        tables["cnn_table.tex"] = cnn_table(results["cnn_architecture"])
    for group in ("mlp_best", "mlp_spec", "cnn_best", "cnn_spec"):
        rows = [row for row in results.get("ablation", {}).values() if row["group"] == group]
        if rows:
            tables[f"ablation_{group}.tex"] = ablation_table(rows, group, seeds, results.get(group, {}).get("epochs", ""))
    return m, tables


def write_sources(out, author):
    results = P.read_results(out)
    if not results:
        raise P.UserError(f"{out / 'figures' / 'results.json'}: no results yet; run `python Project3.py` first.")
    macros, tables = generate(results, author)
    lines = ["% Generated by tools/report.py from results.json: do not edit."]
    lines += [f"\\resdef{{{name}}}{{{value}}}" for name, value in sorted(macros.items())]
    P.write_atomically(out / "figures" / "results.tex", lambda p: p.write_text("\n".join(lines) + "\n"))
    for name, text in tables.items():
        P.write_atomically(out / "figures" / name, lambda p: p.write_text(text))


def build(out):
    """latexmk in a temporary folder; report.pdf is replaced only by a PDF that built without error."""
    tex = TEX
    if not shutil.which("latexmk"):
        raise P.UserError("LaTeX is not installed: the report needs latexmk and pdflatex (on Debian: apt-get install "
                          "--no-install-recommends texlive-latex-recommended latexmk); figures/results.tex was written.")
    build_dir = tempfile.mkdtemp(prefix="report-")
    (Path(build_dir) / "figures").symlink_to(out / "figures")
    shutil.copy(tex, Path(build_dir) / "report.tex")
    run = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error",
                          "report.tex"], cwd=build_dir, capture_output=True, text=True)
    log = Path(build_dir) / "report.log"
    if run.returncode != 0:
        text = log.read_text(errors="replace") if log.is_file() else run.stdout
        errors = re.findall(r"^(?:!|\./report\.tex:\d+:) .*$", text, re.M)  # the -file-line-error form
        raise P.UserError(f"LaTeX failed on {tex.name}: {errors[0] if errors else 'see the log'}; the log is {log}, "
                          f"and {out / 'report.pdf'} was left as it was.")
    P.write_atomically(out / "report.pdf", lambda p: shutil.copy(Path(build_dir) / "report.pdf", p))
    shutil.copy(log, out / "report.log")
    shutil.rmtree(build_dir)
    return out / "report.pdf"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="folder holding figures/results.json; report.pdf goes there (default: the repository)")
    p.add_argument("--id", help="your directory ID, remembered in tools/author.json")
    p.add_argument("--author", help="your name, remembered in tools/author.json")
    args = p.parse_args(argv)
    author = json.loads(AUTHOR.read_text())
    if args.id or args.author:
        author.update({k: v for k, v in (("id", args.id and check_id(args.id)), ("author", args.author)) if v})
        P.write_atomically(AUTHOR, lambda p: p.write_text(json.dumps(author) + "\n"))
    out = out_dir(args.out)
    write_sources(out, author)
    print(f"wrote {build(out)}")


if __name__ == "__main__":
    sys.exit(run_tool(main))
