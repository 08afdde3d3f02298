"""report.pdf from report.tex and the numbers the runs wrote to figures/results.json (Project3.py)
and to figures/seeds.json, ablation.json, bench.json and stacks.json (the tools).

    python tools/report.py [--out DIR] [--id xyz123] [--author "Your Name"]

Writes figures/numbers.tex (every number the report prints, as \\resdef{Name}{value}) and the
generated tables, then builds the PDF with latexmk in a temporary folder and moves it onto
DIR/report.pdf only if the build succeeded. A number whose run has not been made yet
(tools/seeds.py, tools/ablation.py, tools/bench.py) prints as a visible placeholder, never as an
undefined macro. --id and --author are remembered in tools/author.json, which tools/submit.py reads
too; until they are set, the title shows YOUR NAME and YOUR ID. figures/title.json records the
name and ID on the title of the report.pdf just built (and that PDF's SHA-256), for submit.py.

When the folder is the repository itself, README.md's generated tables (between their begin and end
comments) are made anew from the same files.

The statistics (stated once in the report's "Data and statistics"), from scipy.stats: a 95 % Wilson
interval for an accuracy on n images; over n seeds, the mean and the standard deviation s; a single
run against the mean of the seed runs by its prediction interval, t(0.975, n-1) * s * sqrt(1 + 1/n);
several runs against the seed runs by Welch's test; a difference counts when it survives Holm's
correction (a few lines here: scipy lacks it) over the ablation tables' comparisons; weight averages
against the raw weights of the same runs by the paired t-test; equal accuracy over the ten digits by
the chi-squared statistic of the 10 x 2 table of right and wrong answers, its p-value from tables
drawn with the same margins.
"""

import argparse
import hashlib
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path

try:  # Ctrl-C while importing (torch takes a second or two): one line and status 130
    import numpy as np
    from scipy import stats

    from common import ROOT, P, all_results, out_dir, run_tool
except KeyboardInterrupt:
    print(f"{Path(__file__).name}: interrupted.", file=sys.stderr)
    sys.exit(130)

TEX = ROOT / "report.tex"
AUTHOR = ROOT / "tools" / "author.json"
PLACEHOLDER = {"author": "YOUR NAME", "id": "YOUR ID"}
HOLM_YES = "a finding after Holm's correction"  # a difference that counts (the report's one rule)
EXAMPLES = {"A. Student", "xyz123", "YOUR NAME", "YOUR ID", ""}  # never a real name or ID
NETWORKS = {  # macro prefix: results key
    "MlpSmall": "mlp_spec_2000",
    "MlpSpec": "mlp_spec",
    "MlpBest": "mlp_best",
    "CnnSmall": "cnn_spec_2000",
    "CnnSpec": "cnn_spec",
    "CnnBest": "cnn_best",
}
CREDIT = {key: base for key, _, base in P.NETWORKS if base}  # as Project3 prints it
LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "^": r"\textasciicircum{}",
    "~": r"\textasciitilde{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    # Characters that T1 fonts join into another glyph (--, <<, ,, !` ...) or curl (' and `):
    # kept apart, so that a name prints as typed.
    "-": "-{}",
    "<": "<{}",
    ">": ">{}",
    ",": ",{}",
    "!": "!{}",
    "?": "?{}",
    "'": r"\textquotesingle{}",
    "`": r"\textasciigrave{}",
}
SCRIPT_PACKAGES = {  # the start of a character's Unicode name: what would set it in LaTeX
    "CYRILLIC": "the T2A encoding (Debian package texlive-lang-cyrillic)",
    "GREEK": "the LGR encoding (Debian package texlive-lang-greek)",
    "CJK": "the CJKutf8 package (Debian package texlive-lang-cjk)",
    "HIRAGANA": "the CJKutf8 package (Debian package texlive-lang-cjk)",
    "KATAKANA": "the CJKutf8 package (Debian package texlive-lang-cjk)",
    "HANGUL": "the CJKutf8 package (Debian package texlive-lang-cjk)",
}
VIETNAMESE = "the T5 encoding of vntex (Debian package texlive-lang-other)"


# ---- Numbers and statistics ----------------------------------------------------------------


def pct(fraction, digits=2):
    return f"{100 * fraction:.{digits}f}"


def tex_number(value):
    """0.003 -> 0.003, 2e-05 -> 2\\times10^{-5} (for math mode), 35 -> 35."""
    text = f"{value:g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa}\\times10^{{{int(exponent)}}}"


def signed(x):
    """+0.52 or $-$1.90: a minus sign, not a hyphen; 0.00 for what rounds to zero, either side."""
    if round(x, 2) == 0:
        return "0.00"
    return f"+{x:.2f}" if x > 0 else f"$-${-x:.2f}"


def thousands(n):
    return f"{n:,}".replace(",", "{,}")


def wilson(p, n):
    """The 95 % Wilson score interval of a proportion p observed on n trials."""
    interval = stats.binomtest(round(p * n), n).proportion_ci(
        confidence_level=0.95, method="wilson"
    )
    return float(interval.low), float(interval.high)


def mean_sd(values):
    return float(np.mean(values)), float(np.std(values, ddof=1))


def noise_band(values):
    """How far one run may lie from the mean of the seed runs `values` by chance alone (95 %): a
    prediction interval, t(0.975, n-1) * s * sqrt(1 + 1/n)."""
    n = len(values)
    return float(stats.t.ppf(0.975, n - 1)) * mean_sd(values)[1] * math.sqrt(1 + 1 / n)


def compare(variant, recipe):
    """A variant's runs against the recipe's seed runs: (difference of the means, the 95 % band a
    difference must clear, the two-sided p-value). One run: the prediction band of noise_band,
    t with n-1 degrees of freedom. Several: Welch's two-sample test (no equal variances assumed),
    its 95 % interval's half-width the band."""
    mean, sd = mean_sd(recipe)
    if len(variant) > 1:
        welch = stats.ttest_ind(variant, recipe, equal_var=False)
        interval = welch.confidence_interval(0.95)
        difference = float(np.mean(variant)) - mean
        return difference, float(interval.high - interval.low) / 2, float(welch.pvalue)
    n = len(recipe)
    se = sd * math.sqrt(1 + 1 / n)
    difference = variant[0] - mean
    p_value = 2 * float(stats.t.sf(abs(difference) / se, n - 1))
    return difference, float(stats.t.ppf(0.975, n - 1)) * se, p_value


def holm(p_values, alpha=0.05):
    """Holm's step-down correction (not in scipy): which of the hypotheses are rejected with a
    family-wise error rate of alpha (the smallest p against alpha/m, the next against
    alpha/(m-1), ...)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected


def mcnemar_p(only_first, only_second):
    """McNemar's exact test: the two-sided binomial p-value of the images that one of two networks
    gets right and the other wrong (the paired comparison on the same images)."""
    n = only_first + only_second
    return float(stats.binomtest(only_first, n).pvalue) if n else 1.0


def equal_accuracy_test(matrix, resamples=200_000):
    """Whether the ten digits are recognised equally well: the chi-squared statistic of the 10 x 2
    table of right and wrong answers per digit, and its p-value from a Monte Carlo test over tables
    with the same margins (the mistakes are too few for the chi-squared approximation)."""
    C = np.array(matrix)
    right = np.diag(C)
    table = np.stack([right, C.sum(axis=1) - right], axis=1)
    method = stats.MonteCarloMethod(n_resamples=resamples, rng=np.random.default_rng(0))
    test = stats.chi2_contingency(table, correction=False, method=method)
    return float(test.statistic), float(test.pvalue)


def p_text(p_value):
    return (
        f"{p_value:.2f}" if p_value >= 0.01 else f"{p_value:.3f}" if p_value >= 0.001 else "<0.001"
    )


def p_relation(p_value):
    """For "$p\\R{...}$" in the text: "=0.34", or "<0.001" (never "=<0.001")."""
    text = p_text(p_value)
    return text if text.startswith("<") else "=" + text


# ---- Macros from each entry of results.json -----------------------------------------------------


def network_macros(r, prefix, seeds):
    h = r["history"]
    m = {
        "Val": pct(r["val_accuracy"]),
        "BestVal": pct(r["best_val_accuracy"]),
        "FinalVal": pct(r["final_val_accuracy"]),
        "FinalTrain": pct(r["final_train_accuracy"]),
        "Epochs": str(r["epochs"]),
        "Steps": thousands(r["steps"]),
        "BestEpoch": str(r["best_epoch"]),
        "Seconds": f"{r['train_seconds']:.0f}",
        "Gap": f"{100 * (r['final_train_accuracy'] - r['final_val_accuracy']):.1f}",
        "MaxGap": f"{100 * max(t - v for t, v in zip(h['train_acc'], h['val_acc'])):.1f}",
        "SecondsPerEpoch": f"{r['train_seconds'] / r['epochs']:.2f}",
        "StepsPerEpoch": str(r["steps"] // r["epochs"]),
        "FinalTrainLoss": f"{h['train_loss'][-1]:.3f}",
        "FinalValLoss": f"{h['val_loss'][-1]:.3f}",
    }
    val = h["val_acc"]
    low = int(np.argmin(h["val_loss"]))
    m.update(
        ValLossMin=f"{h['val_loss'][low]:.3f}",
        ValLossMinStep=thousands(h["step"][low]),
        ValLossMinEpoch=str(low + 1),
        ValAtValLossMin=pct(val[low]),
    )
    last = val[-5:]  # how much validation accuracy moves from epoch to epoch at the end
    m.update(LastFiveMin=pct(min(last)), LastFiveMax=pct(max(last)), LastFiveN=str(len(last)))
    learned = [i for i in range(1, len(val)) if max(val[:i]) >= 0.9]  # once it has learned
    drop = max(learned, key=lambda i: val[i - 1] - val[i], default=0)
    m.update(
        DropStep=thousands(h["step"][drop]), DropVal=pct(val[drop]), DropFrom=pct(val[drop - 1])
    )
    train = h["train_acc"]
    fall = max(range(1, len(train)), key=lambda i: train[i - 1] - train[i], default=0)
    m.update(
        TrainDropStep=thousands(h["step"][fall]),
        TrainDropEpoch=str(fall + 1),
        TrainDropFrom=pct(train[fall - 1]),
        TrainDropTo=pct(train[fall]),
    )
    full = [step for step, accuracy in zip(h["step"], h["train_acc"]) if accuracy == 1.0]
    m["TrainFullStep"] = thousands(full[0]) if full else "never"
    if "train_n" in r:
        m["TrainN"] = thousands(r["train_n"])
    if "test_accuracy" in r:
        p = r["test_accuracy"]
        n = r["test_n"]
        low_p, high_p = wilson(p, n)
        m.update(
            Test=pct(p),
            TestN=str(n),
            TestErrors=str(round((1 - p) * n)),
            TestLow=pct(low_p),
            TestHigh=pct(high_p),
        )
    key = NETWORKS[prefix]
    if key in CREDIT and "test_accuracy" in r:
        credit = max(100 * r["test_accuracy"] - CREDIT[key], P.CREDIT_FLOOR)
        m["Credit"] = f"{credit:+.2f}"
    config = r.get("config", {})
    for name, value in {**config, **(config.get("augment") or {})}.items():
        if not isinstance(value, dict):  # LrFinal, RotateDeg, ...
            m[name.replace("_", " ").title().replace(" ", "")] = tex_number(value)
    if len(seeds.get(key, {}).get("val", [])) >= 2:  # a spread needs two seeds at least
        m.update(seed_macros(seeds[key]))
    return {prefix + name: value for name, value in m.items()}


def seed_macros(runs):
    m = {"SeedN": str(len(runs["val"]))}
    for what in ("val", "test"):
        mean, sd = mean_sd(runs[what])
        name = f"Seed{what.title()}"
        m[name] = f"{pct(mean)} $\\pm$ {pct(sd)}"
        m[name + "Mean"] = pct(mean)
        m[name + "Sd"] = pct(sd)
        m[name + "Min"] = pct(min(runs[what]))
        m[name + "Max"] = pct(max(runs[what]))
        m[name + "Noise"] = pct(noise_band(runs[what]), 3)  # three decimals: beside a difference
    return m


def confusion_macros(c, prefix):
    C = np.array(c["matrix"])
    per_class = list(np.diag(C) / C.sum(axis=1))  # from the counts: results.json rounds them
    wrong = C.sum(axis=1) - np.diag(C)
    statistic, p_value = equal_accuracy_test(C)
    top = c["top_confusions"]
    repeated = [t for t in top if t["count"] > 1]
    m = {
        "PerClass": " & ".join(pct(a, 1) for a in per_class),
        "PerClassList": ", ".join(f"{d}: {pct(a, 1)}" for d, a in enumerate(per_class)),
        "Errors": str(int(wrong.sum())),
        "AccMin": pct(min(per_class), 1),
        "AccMax": pct(max(per_class), 1),
        "Weakest": spoken_list(
            [f"{d} ({pct(per_class[d], 1)}\\pct)" for d in np.argsort(per_class, kind="stable")[:3]]
        ),
        "ChiSquared": f"{statistic:.1f}",
        "ChiP": p_relation(p_value),
        "TopCount": str(top[0]["count"]),
        "TopShare": str(sum(t["count"] for t in top[:6])),
        "TopConfusions": ", ".join(arrow(t) for t in top[:6]),
        "RepeatedConfusions": ", ".join(arrow(t) for t in repeated),
        "RepeatedN": str(len(repeated)),
        "AccSpread": spread_verdict(p_value),
    }
    if len(top) > 5:  # the figure shows six confusions; the sixth may be one of several ties
        sixth = top[5]["count"]
        off_diagonal = C[~np.eye(10, dtype=bool)]
        seen = "once" if sixth == 1 else "twice" if sixth == 2 else f"{sixth} times"
        m.update(SixthSeen=seen, SixthTies=str(int((off_diagonal == sixth).sum())))
    return {prefix + name: value for name, value in m.items()}


def spread_verdict(p_value):
    """What a test of an even spread (over the digits) says, in the words the report uses."""
    if p_value < 0.05:
        return "the digits differ beyond chance"
    return "no measurable difference between the digits"


def arrow(t):
    return f"{t['true']}$\\to${t['predicted']} ({t['count']})"


def template_macros(t):
    return {
        "BlankPixels": str(t["mlp_spec"]["blank_pixels"]),
        "BestBlankPixels": str(t["mlp_best"]["blank_pixels"]),
        "SpecRmsBlank": f"{t['mlp_spec']['rms_blank']:.3f}",
        "SpecRmsInked": f"{t['mlp_spec']['rms_inked']:.3f}",
        "BestRmsBlank": f"{t['mlp_best']['rms_blank']:.2f}",
        "BestRmsInked": f"{t['mlp_best']['rms_inked']:.2f}",
        "SpecRmsChangeInked": f"{t['mlp_spec']['rms_change_inked']:.3f}",
        "BestRmsChangeInked": f"{t['mlp_best']['rms_change_inked']:.2f}",
    }


def seconds_macros(seconds):
    total = sum(seconds.values())
    return {
        "GraderSeconds": f"{total:.0f}",
        "GraderMinutes": f"{total / 60:.1f}",
        "PartOneSeconds": f"{sum(v for k, v in seconds.items() if k[0] == '2'):.0f}",
        "PartTwoSeconds": f"{sum(v for k, v in seconds.items() if k[0] == '3'):.0f}",
    }


def versions_macros(v):
    return {
        "PinnedPython": v["python"],
        "PinnedNumpy": v["numpy"],
        "PinnedMatplotlib": v["matplotlib"],
        "PinnedTorch": str(v["torch"]).split("+")[0],
    }


def spoken_list(items):
    """["a", "b", "c"] as "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def ablation_comparisons(results, seeds):
    """Every variant of the ablation tables against the seed runs of its recipe (compare): its
    runs (seed 0 in "ablation", more seeds in "ablation_seeds"; the recipe before a change in
    "seeds_previous"), the difference and its p-value, and Holm's correction
    over all of them (the tables' family of comparisons)."""
    runs = {}
    seeded = results.get("ablation_seeds", {})
    single = results.get("ablation", {})
    keys = [*single, *sorted({k.split("/")[0] for k in seeded} - set(single))]
    for key in [key for key in keys if not key.endswith("_averaging")]:  # the recipe itself
        more = [r for k, r in seeded.items() if k.startswith(key + "/")]
        rows = [single[key], *more] if key in single else more
        runs[key] = {"variant": rows[0]["variant"], "group": rows[0]["group"], "rows": rows}
    previous = results.get("seeds_previous", {})
    for group, note in previous.get("notes", {}).items():
        recorded = previous[group]
        if recorded["val"] != seeds.get(group, {}).get("val"):  # a recipe that changed since
            epochs = {"epochs": recorded["epochs"]} if "epochs" in recorded else {}
            rows = [
                {"best_val_accuracy": v, "final_val_accuracy": v, "best_epoch": e, **epochs}
                for v, e in zip(recorded["val"], recorded["best_epoch"])
            ]
            runs[f"{group}_previous"] = {"variant": note, "group": group, "rows": rows}
    comparisons = {}
    for key, c in runs.items():
        if c["group"] not in seeds:
            continue
        values = [row[compared_statistic(c["group"])] for row in c["rows"]]
        difference, _, p_value = compare(values, seeds[c["group"]]["val"])
        comparisons[key] = {**c, "difference": difference, "p": p_value}
    for c, rejected in zip(comparisons.values(), holm([c["p"] for c in comparisons.values()])):
        c["holm"] = rejected
    return comparisons


def ablation_name(key):
    """A row's macro prefix: mlp_no_augment -> AblMlpNoAugment."""
    return "Abl" + key.replace("_", " ").title().replace(" ", "")


def ablation_macros(c, key):
    name = ablation_name(key)
    rows = c["rows"]
    row = rows[0]
    best = [r["best_val_accuracy"] for r in rows]
    m = {
        "Best": pct(sum(best) / len(best)),
        "BestEpoch": str(row["best_epoch"]),
        "BestEpochs": f"{min(r['best_epoch'] for r in rows)}--{max(r['best_epoch'] for r in rows)}",
        "Seeds": str(len(rows)),
        "Diff": signed(100 * c["difference"]),
        "P": p_relation(c["p"]),
        "Holm": HOLM_YES if c["holm"] else "not after Holm's correction",
    }
    if "epochs" in row:
        m["Epochs"] = str(row["epochs"])
    if "final_train_accuracy" in row:  # a row of the ablation tool (a previous recipe: seeds only)
        m["Last"] = pct(row["final_val_accuracy"])
        m.update(LastTrain=pct(row["final_train_accuracy"]))
        m["LastGap"] = f"{100 * (row['final_train_accuracy'] - row['final_val_accuracy']):.1f}"
    if len(rows) > 1:
        m["BestSd"] = pct(mean_sd(best)[1])
    return {name + k: v for k, v in m.items()}


def averaging_macros(results):
    """Weight averaging, measured beside the raw weights in the same ablation runs (the ablation
    tool records each decay's best validation accuracy): per row of several seeds and per decay,
    the mean difference averaged minus raw and the paired t-test's two-sided p-value."""
    rows = {}
    seed_zero = {f"{key}/seed0": row for key, row in results.get("ablation", {}).items()}
    for key, row in {**seed_zero, **results.get("ablation_seeds", {})}.items():
        if "ema" in row:
            rows.setdefault(key.split("/")[0], []).append(row)
    m = {}
    for key, runs in rows.items():
        name = ablation_name(key)
        raw = [r["best_val_accuracy"] for r in runs]
        for decay in runs[0]["ema"]:
            averaged = [r["ema"][decay]["best_val_accuracy"] for r in runs]
            test = stats.ttest_rel(averaged, raw) if len(runs) > 1 else None
            label = f"{name}Ema{decay.split('.')[1]}"  # 0.999 -> Ema999
            m[label + "Best"] = pct(float(np.mean(averaged)))
            m[label + "Diff"] = signed(100 * (float(np.mean(averaged)) - float(np.mean(raw))))
            if test is not None and np.isfinite(test.pvalue):
                m[label + "P"] = p_relation(float(test.pvalue))
            m[label + "Seeds"] = str(len(runs))
    return m


def family_macros(comparisons):
    """The ablation tables as one family of comparisons, over which Holm's correction runs."""
    return {"AblComparisons": str(len(comparisons))}


def compared_statistic(group):
    """The 2.6 and 3.4 recipes keep their best epoch; the specified trainings their last."""
    return "best_val_accuracy" if group.endswith("best") else "final_val_accuracy"


def busy_macros(b):
    """tools/bench.py --busy: 2.6's and 3.4's epochs with one core busy, default threads or one."""
    busy, one = b["one core busy, default threads"], b["one core busy, one thread"]
    return {
        "BusyMlpDefault": f"{busy['mlp_best']:.1f}",
        "BusyMlpOne": f"{one['mlp_best']:.1f}",
        "BusyCnnDefault": f"{busy['cnn_best']:.1f}",
        "BusyCnnOne": f"{one['cnn_best']:.1f}",
    }


# ---- Tables ------------------------------------------------------------------------------------


def ablation_table(groups, seeds):
    """One network's variants, a block per training it varies (groups: [(group, comparisons,
    epochs)]), each against its seed runs: the difference of the means and its p-value, starred
    when the difference counts (Holm's correction over all the tables' comparisons)."""
    lines = [
        r"\begin{tabular*}{\linewidth}{@{\extracolsep{\fill}}"
        r">{\raggedright\arraybackslash}p{0.31\linewidth}rrrrrr@{}}",
        r"\toprule",
        r"training & seeds & epochs & best (epoch) & last & difference & $p$ \\",
    ]
    for group, comparisons, epochs in groups:
        runs = seeds[group]
        mean, sd = mean_sd(runs["val"])
        name = "chosen recipe" if group.endswith("best") else "as specified"
        spread = f"{pct(mean)} $\\pm$ {pct(sd)}"
        best, last = (spread, "") if group.endswith("best") else ("", spread)
        lines.append(r"\midrule")
        lines.append(
            f"{name} (mean $\\pm$ sd) & {len(runs['val'])} & {epochs} & {best} & {last} & & \\\\"
        )
        for c in comparisons:
            rows = c["rows"]
            best = [r["best_val_accuracy"] for r in rows]
            epoch_range = sorted({r["best_epoch"] for r in rows})
            if len(rows) == 1:
                best_text = f"{pct(best[0])} ({rows[0]['best_epoch']})"
            else:
                spread = f"{pct(sum(best) / len(best))} $\\pm$ {pct(mean_sd(best)[1])}"
                best_text = f"{spread} ({epoch_range[0]}--{epoch_range[-1]})"
            # the ablation tool's rows only: a previous recipe's seed runs record no last epoch
            lasts = [r["final_val_accuracy"] for r in rows if "final_train_accuracy" in r]
            last_text = pct(sum(lasts) / len(lasts)) if lasts else ""
            if len(lasts) > 1:  # several seeds: their mean and sd, as for the best epochs
                last_text += f" $\\pm$ {pct(mean_sd(lasts)[1])}"
            diff = signed(100 * c["difference"])
            star = "$^*$" if c["holm"] else ""
            lines.append(
                f"{c['variant']} & {len(rows)} & {rows[0].get('epochs', '')} & {best_text} & "
                f"{last_text} & {diff} & ${p_text(c['p'])}${star} \\\\"
            )
    return "\n".join([*lines, r"\bottomrule", r"\end{tabular*}"]) + "\n"


def dims(shape):
    return "$" + r"\times".join(map(str, shape)) + "$"


STEP_NAMES = {  # the steps of 3.1 in words, not the module's attribute names
    "conv1": "convolution 1",
    "conv2": "convolution 2",
    "pool": "max-pooling",
    "fc1": "fully connected 1",
    "fc2": "fully connected 2",
    "fc3": "fully connected 3",
}


def cnn_table(arch):
    lines = [
        r"\begin{tabular}{lccccr}",
        r"\toprule",
        r"step & kernel & stride & padding & input $\to$ output & parameters \\",
        r"\midrule",
    ]
    for r in arch["layers"]:
        kernel = f"${r['kernel_size']}\\times{r['kernel_size']}$" if "kernel_size" in r else ""
        lines.append(
            f"{STEP_NAMES.get(r['layer'], r['layer'])} & {kernel} & {r.get('stride', '')} & "
            f"{r.get('padding', '')} & {dims(r['input'])} $\\to$ {dims(r['output'])} & "
            f"{thousands(r['params'])} \\\\"
        )
    total = thousands(arch["total_params"])
    lines += [r"\midrule", f"total & & & & & {total} \\\\", r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


# ---- The words that rest on a test -------------------------------------------------------------
# Some results report.tex words in prose ("not measurably worse"). Each such phrase is listed here
# with what the printed numbers beside it must show; write_sources names any phrase that a rerun's
# numbers no longer support, and a test holds the committed report to every one.


def number(text):
    """A printed number as a float: "$-$0.38" -> -0.38, "=0.55" -> 0.55, "<0.001" -> 0.001 (its
    bound), "2.8\\times10^{-6}" -> 2.8e-06."""
    text = text.replace("$-$", "-").replace("\\times10^{", "e").rstrip("}")
    return float(text.lstrip("=<"))


def counts(m, key, sign):
    """The ablation row `key` differs from its recipe in a way that counts (Holm's correction), on
    the side of `sign` (+1 above the recipe)."""
    return m[f"{key}Holm"] == HOLM_YES and sign * number(m[f"{key}Diff"]) > 0


CLAIMS = {  # a phrase of report.tex -> whether the macros (the printed numbers) support it
    "In double precision they agree": lambda m: (
        max(map(number, (m["GradChain"], m["GradFinite"]))) < 1e-6
    ),
    "so the accuracy does not measurably change while the loss rises": (
        lambda m: number(m["MlpSmallPairedP"]) >= 0.05
    ),
    "with 50000 images the gap grows too, only much later": (
        lambda m: number(m["AblMlpSpecLongLastGap"]) > number(m["MlpSpecGap"])
    ),
    "Without deskewing, the same recipe": lambda m: counts(m, "AblMlpBestPrevious", -1),
    "Without distortions the network": lambda m: counts(m, "AblMlpNoAugment", -1),
    "a difference that counts, but it peaks in": lambda m: counts(m, "AblMlpSgdAugment", -1),
    "still rising, so it may be slower rather than worse": lambda m: (
        number(m["AblMlpSgdAugmentBestEpoch"]) >= 0.8 * number(m["AblMlpSgdAugmentEpochs"])
    ),
    "tried on the deskewed digits and not kept": lambda m: (
        not counts(m, "AblMlpElastic", +1) and number(m["AblMlpAveragingEma999P"]) >= 0.05
    ),
    "worse, at Simard's scale beside the affine distortions": (
        lambda m: counts(m, "AblMlpElastic", -1)
    ),
    "and no digit is measurably harder than the others": lambda m: number(m["MlpChiP"]) >= 0.05,
    "gains nothing measurable": lambda m: not counts(m, "AblCnnSpecLong", +1),
    "summed loss does not train": lambda m: number(m["AblCnnMomentumSumBest"]) < 20,  # chance: 10
    "the CNN is above what the MLP reached in four times as many": (
        lambda m: number(m["CnnSpecFinalVal"]) > number(m["MlpSpecFinalVal"])
    ),
    "consistent with small filters shared across the": (
        lambda m: number(m["MlpSmallValAtCnnSteps"]) < number(m["CnnSmallFinalVal"])
    ),
    "The distortions matter": lambda m: counts(m, "AblCnnNoAugment", -1),
    "the CNN gains nothing measurable from deskewed digits": (
        lambda m: not counts(m, "AblCnnDeskew", +1)
    ),
    "Weight averages, measured beside the raw weights in those five runs, were no better": (
        lambda m: all(
            number(m[f"AblCnnDeskewEma{d}P"]) >= 0.05 or number(m[f"AblCnnDeskewEma{d}Diff"]) <= 0
            for d in ("999", "9998")
        )
    ),
    "On a busy machine, start it as": (
        lambda m: number(m["BusyMlpOne"]) < number(m["BusyMlpDefault"])
    ),
}


def unsupported_claims(macros, tex):
    """The phrases of CLAIMS in the text tex that the macros do not support; a phrase whose numbers
    are not measured yet (a quick run's report) is left out."""
    text = " ".join(tex.split())  # a phrase may run over a line break
    failed = []
    for phrase, holds in CLAIMS.items():
        try:
            supported = holds(macros)
        except KeyError:  # not measured yet: the report shows a placeholder beside it
            continue
        if phrase in text and not supported:
            failed.append(phrase)
    return failed


# ---- Generating and building ------------------------------------------------------------------


def escape(text):
    """Text as LaTeX prints it: every special character escaped, so a name is never code."""
    return "".join(LATEX_SPECIALS.get(c, c) for c in text)


def from_entry(results, key, make, *args):
    """make(results[key], *args), or one sentence naming the entry when it is malformed."""
    try:
        return make(results[key], *args)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError, AttributeError) as e:
        raise P.UserError(
            f"results.json: the entry {key!r} lacks a field or holds a wrong value "
            f"({type(e).__name__}: {e}); rerun what writes it (Project3.py or the tool)."
        ) from None


def generate(results, author):
    """(macros, {file name: LaTeX}) from results.json and the author's name and ID."""
    seeds = results.get("seeds", {})
    m = {"Author": escape(author["author"]), "DirectoryId": escape(author["id"])}
    for prefix, key in NETWORKS.items():
        if key in results:
            m.update(from_entry(results, key, network_macros, prefix, seeds))
    if "seeds" in results:
        m.update(from_entry(results, "seeds", last_seed))
    previous = results.get("seeds_previous", {})
    for prefix, key in NETWORKS.items():  # a recipe before a change, read on test afterwards
        if key in previous.get("notes", {}):
            runs = from_entry(previous, key, seed_macros)
            m.update({f"{prefix}Previous{name}": value for name, value in runs.items()})
    if "mlp_spec_2000" in results and "cnn_spec_2000" in results:
        m.update(from_entry(results, "mlp_spec_2000", mlp_at_cnn_steps, results["cnn_spec_2000"]))
    for prefix, key in (("Mlp", "mlp_confusion"), ("Cnn", "cnn_confusion")):
        if key in results:
            m.update(from_entry(results, key, confusion_macros, prefix))
    if "distortions" in results:
        m.update(from_entry(results, "distortions", distortion_macros))
    if "mlp_templates" in results:
        m.update(from_entry(results, "mlp_templates", template_macros))
    if "gradient_check" in results:
        m.update(from_entry(results, "gradient_check", gradient_macros))
    if "cnn_architecture" in results:
        m["CnnParams"] = thousands(results["cnn_architecture"].get("total_params", 0))
    if results.get("seconds"):
        m.update(from_entry(results, "seconds", seconds_macros))
    if "versions" in results:
        m.update(from_entry(results, "versions", versions_macros))
    comparisons = from_entry({"ablation": results}, "ablation", ablation_comparisons, seeds)
    for key, c in comparisons.items():
        m.update(ablation_macros(c, key))
    if comparisons:
        m.update(family_macros(comparisons))
    m.update(from_entry({"ablation": results}, "ablation", averaging_macros))
    if "mlp_small_paired" in results:
        m.update(from_entry(results, "mlp_small_paired", paired_macros))
    if "bench_busy" in results:
        m.update(from_entry(results, "bench_busy", busy_macros))
    tables = {}
    if "cnn_architecture" in results:
        tables["cnn_table.tex"] = from_entry(results, "cnn_architecture", cnn_table)
    for network in ("mlp", "cnn"):
        groups = []
        for group in (f"{network}_best", f"{network}_spec"):
            rows = [c for c in comparisons.values() if c["group"] == group]
            if rows:
                groups.append((group, rows, results.get(group, {}).get("epochs", "")))
        if groups:
            tables[f"ablation_{network}.tex"] = ablation_table(groups, seeds)
    return m, tables


def paired_macros(paired):
    """2.5: the 2000-image run's validation answers at its lowest validation loss and at its end,
    compared image by image (McNemar)."""
    first_only, last_only = paired["right_first_only"], paired["right_last_only"]
    return {
        "MlpSmallPairedFirstOnly": str(first_only),
        "MlpSmallPairedLastOnly": str(last_only),
        "MlpSmallPairedP": p_relation(mcnemar_p(first_only, last_only)),
    }


def mlp_at_cnn_steps(small, cnn_small):
    """The MLP on 2000 images after as many steps as the CNN took on them (3.3)."""
    at = max(i for i, step in enumerate(small["history"]["step"]) if step <= cnn_small["steps"])
    return {
        "MlpSmallValAtCnnSteps": pct(small["history"]["val_acc"][at]),
        "MlpSmallTrainAtCnnSteps": pct(small["history"]["train_acc"][at]),
    }


def last_seed(s):
    return {"SeedLast": str(s["seeds"][-1]), "SeedCount": str(len(s["seeds"]))}


def gradient_macros(g):
    """2.3's check of update_grad: the largest relative differences, for math mode."""
    return {
        "GradChain": tex_number(float(f"{g['chain_vs_backprop']:.1e}")),
        "GradFinite": tex_number(float(f"{g['finite_vs_backprop']:.1e}")),
        "GradImages": str(g["images"]),
        "GradEntries": str(g["entries_per_parameter"]),
    }


def distortion_macros(d):
    return {
        "DistortedInkImages": pct(d["images_inking_blank"], 1),
        "DistortedInkPixel": pct(d["per_blank_pixel"], 2),
    }


def read_author(given_id=None, given_author=None):
    """The name and ID for the title: tools/author.json, updated with --id and --author (and
    remembered). A missing file means the placeholders; a damaged one is refused unless both are
    given."""
    author = dict(PLACEHOLDER)
    if AUTHOR.exists() and not (given_id and given_author):
        try:
            saved = json.loads(AUTHOR.read_text())
            if not isinstance(saved, dict) or not all(isinstance(v, str) for v in saved.values()):
                raise ValueError("expected an object of strings")
        except (OSError, ValueError) as error:
            raise P.UserError(
                f"{AUTHOR} is damaged ({error}); delete it, or give both --id and --author."
            ) from None
        author.update({k: v for k, v in saved.items() if k in author and v not in EXAMPLES})
    if given_id is not None:
        author["id"] = check_id(given_id)
    if given_author is not None:
        if not given_author.strip():
            raise P.UserError("--author needs a name; an empty one was given.")
        author["author"] = check_name(given_author)
    return author


def settable_characters():
    """The characters beyond ASCII that the installed LaTeX sets in the report's fonts: those its
    T1 and TS1 encodings define (t1enc.dfu, ts1enc.dfu); without LaTeX, Latin-1's and Latin
    Extended-A's letters, which T1 holds."""
    found = set()
    for table in ("t1enc.dfu", "ts1enc.dfu"):
        where = (
            shutil.which("kpsewhich")
            and subprocess.run(["kpsewhich", table], capture_output=True, text=True).stdout.strip()
        )
        if where:
            text = Path(where).read_text(errors="replace")
            codes = re.findall(r"\\DeclareUnicodeCharacter\{([0-9A-F]+)\}", text)
            found |= {chr(int(code, 16)) for code in codes}
    return found or {chr(code) for code in range(0xC0, 0x180) if code not in (0xD7, 0xF7)}


def check_name(name):
    """The name (composed, NFC) if the report's fonts set every character of it; else one
    sentence naming the first that they cannot and what would set it."""
    name = unicodedata.normalize("NFC", name)
    settable = settable_characters()
    for c in name:
        if " " <= c <= "~" or c in settable:
            continue
        what = unicodedata.name(c, f"U+{ord(c):04X}")
        needs = next((p for start, p in SCRIPT_PACKAGES.items() if what.startswith(start)), None)
        if 0x1EA0 <= ord(c) <= 0x1EF9 or c in "ƠơƯư":  # Vietnamese's letters with two accents
            needs = VIETNAMESE
        advice = f"LaTeX would need {needs}" if needs else "no LaTeX package here sets it"
        raise P.UserError(
            f"the author's name: {c} ({what}) cannot be set in the report's fonts ({advice}); "
            "nothing was saved: give the name in the letters of a Western or Central European "
            "language."
        )
    return name


def check_id(directory_id):
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", directory_id or ""):
        raise P.UserError(
            "the directory ID must be a plain identifier such as xyz123 (a letter, then letters, "
            f"digits or _), found {directory_id!r}."
        )
    return directory_id


def is_placeholder(author):
    return author["id"] in EXAMPLES or author["author"] in EXAMPLES


WEIGHTS = {"mlp_spec": "mlp_spec.npz", "mlp_best": "mlp.npz", "cnn_spec": "cnn_spec.npz"}
WEIGHTS["cnn_best"] = "cnn.npz"
SECTION_OF = {"mlp_spec": "2.5", "mlp_best": "2.6", "cnn_spec": "3.2", "cnn_best": "3.4"}


def check_together(out, results):
    """What the report reads belongs together: no section left unfinished, 2.7's, 2.8's and 3.4's
    records computed from the networks that 2.5, 2.6 and 3.4 recorded, and each weights file of
    the run its record names; else one sentence naming the section to rerun."""
    unfinished = sorted(results.get("unfinished", {}))
    if unfinished:
        raise P.UserError(
            f"section {', '.join(unfinished)} did not finish in {out} (interrupted): rerun it with "
            "`python Project3.py --section ...` before building the report."
        )
    templates = results.get("mlp_templates", {})
    derived = [  # (a record computed from a network, that network's record key, the section)
        (results.get("mlp_confusion"), "mlp_best", "2.7"),
        (results.get("cnn_confusion"), "cnn_best", "3.4"),
        (templates.get("mlp_spec"), "mlp_spec", "2.8"),
        (templates.get("mlp_best"), "mlp_best", "2.8"),
    ]
    for record, key, section in derived:
        if record and key in results and record.get("run") != results[key].get("run"):
            raise P.UserError(
                f"the record of section {section} in {out} was computed from another network than "
                f"the one section {SECTION_OF[key]} recorded: rerun section {section}."
            )
    for key, file in WEIGHTS.items():
        path = out / "weights" / file
        if key in results and path.is_file():
            with np.load(path, allow_pickle=False) as saved:
                run_id = str(saved["run"]) if "run" in saved.files else None
            P.saved_record(out, SECTION_OF[key], key, run_id)  # Project3's own check


# ---- README's tables ---------------------------------------------------------------------------

README = ROOT / "README.md"
README_NETWORKS = {  # results key: how README's table names the network
    "mlp_spec": "MLP as specified (2.5), `weights/mlp_spec.npz`",
    "mlp_best": "**MLP trained better** (2.6), `weights/mlp.npz`",
    "cnn_spec": "CNN as specified (3.2), `weights/cnn_spec.npz`",
    "cnn_best": "**CNN trained better** (3.4), `weights/cnn.npz`",
}


def percent(fraction):
    return f"{pct(fraction)} %"


def spread(values):
    mean, sd = mean_sd(values)
    return f"{100 * mean:.2f} ± {100 * sd:.2f} %"


def markdown(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def results_table(results):
    """The four networks: seed 0's validation and test accuracy, the seeds' spread, the credit."""
    seeds = results.get("seeds", {})
    rows = []
    for key, name in README_NETWORKS.items():
        r = results[key]
        runs = seeds.get(key, {"val": [], "test": []})
        credit = f"{100 * (r['test_accuracy'] - CREDIT[key] / 100):+.2f}" if key in CREDIT else ""
        rows.append(
            [
                name,
                percent(r["val_accuracy"]),
                percent(r["test_accuracy"]),
                spread(runs["val"]) if len(runs["val"]) > 1 else "",
                spread(runs["test"]) if len(runs["test"]) > 1 else "",
                credit,
            ]
        )
    n = len(seeds.get("seeds", []))
    header = ["network", "validation", "test", f"validation, {n} seeds", f"test, {n} seeds"]
    return markdown([*header, "extra credit"], rows)


def variants_table(results):
    """Every variant of the ablation tool and every earlier recipe, against its recipe's seeds."""
    return comparisons_table(ablation_comparisons(results, results.get("seeds", {})))


def variants_before_table(results):
    """The variants of 2.6's recipe before it deskewed the digits, against that recipe's seeds."""
    before = results["before_deskew"]
    previous = results["seeds_previous"]
    seeds = {key: runs for key, runs in previous.items() if key == "mlp_best"}
    return comparisons_table(ablation_comparisons(before, seeds))


def history_table(results):
    """Earlier recipes (seeds.json's seeds_history), each against the recipe that replaced it."""
    rows = []
    for earlier in results.get("seeds_history", {}).values():
        group = earlier["group"]  # the recipe it was replaced in
        base = results[earlier["against"]][group]["val"]
        difference, _, p_value = compare(earlier["val"], base)
        epochs = sorted(earlier["best_epoch"])
        seeds = f"{len(earlier['val'])}; epochs {epochs[0]}–{epochs[-1]}"
        rows.append(
            [
                group,
                earlier["note"],
                f"{spread(earlier['val'])} ({seeds})",
                f"{spread(base)} ({len(base)})",
                f"{100 * difference:+.2f}",
                p_text(p_value),
            ]
        )
    header = ["recipe", "earlier recipe", "its best validation", "the recipe that replaced it"]
    return markdown([*header, "difference", "p"], rows)


def comparisons_table(comparisons):
    rows = []
    for c in sorted(comparisons.values(), key=lambda c: c["group"]):
        best = [r["best_val_accuracy"] for r in c["rows"]]
        epochs = sorted({r["best_epoch"] for r in c["rows"]})
        where = f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]}–{epochs[-1]}"
        shown = spread(best) if len(best) > 1 else percent(best[0])
        rows.append(
            [
                c["group"],
                c["variant"],
                str(len(best)),
                f"{shown} ({where})",
                f"{100 * c['difference']:+.2f}",
                p_text(c["p"]),
                "yes" if c["holm"] else "no",
            ]
        )
    header = ["recipe", "variant", "seeds", "best validation (epochs)", "difference", "p", "counts"]
    return markdown(header, rows)


def bench_table(results):
    """tools/bench.py's epochs, quiet and with a core busy, default threads and one."""
    busy = results["bench_busy"]
    kinds = sorted((k for k in busy if isinstance(busy[k], dict)), key=lambda k: "busy" in k)
    names = {
        "mlp_numpy": "2.4, plain SGD (numpy)",
        "mlp_best": "2.6 (numpy)",
        "cnn_best": "3.4 (torch)",
    }
    rows = [
        [name, *(f"{busy[k][key]:.2f} s" for k in kinds)]
        for key, name in names.items()
        if all(key in busy[k] for k in kinds)
    ]
    return markdown(["one epoch", *kinds], rows)


EPOCH_ROWS = (  # bench.json's keys: (what is timed, now, before and what "before" was)
    ("2.6: Adam, distortions, two evaluations", "mlp_best", "mlp_best_before", "5b28598's warp"),
    ("2.6's distortions alone", "distort", "distort_before", "5b28598's warp"),
    ("their four gathers alone: the floor of a gather-based warp", "gathers", None, ""),
    ("2.4's plain SGD in numpy; the same network in torch", "mlp_numpy", "mlp_torch", "torch"),
    ("3.4 (batch 256), with its evaluations", "cnn_best", "cnn_best_before", "batch 128"),
    ("3.4; a plain PyTorch loop of the same work", "cnn_best", "cnn_plain", "plain loop"),
)


def epochs_table(results):
    """tools/bench.py's epochs on 50000 images: the best of its rounds, and their range."""
    bench = results["bench"]

    def timed(key):
        low, high = bench["spread"][key]
        return f"{bench[key]:.2f} s ({low:.2f}–{high:.2f})"

    rows = [
        [what, timed(now), f"{timed(other)}, {label}" if other else ""]
        for what, now, other, label in EPOCH_ROWS
    ]
    return markdown(["one epoch (50000 images)", "this code", "compared with"], rows)


def grader_runs_table(results):
    """Whole grader's runs timed back to back (bench.json's grader_runs: each run's label and its
    results.json seconds per section)."""
    runs = results["grader_runs"]
    sections = list(next(iter(runs.values()))["seconds"])
    rows = [
        [
            label,
            *(f"{run['seconds'][s]:.0f}" for s in sections),
            f"{sum(run['seconds'].values()):.0f}",
        ]
        for label, run in runs.items()
    ]
    return markdown(["run", *sections, "all"], rows)


README_TABLES = {
    "results": results_table,
    "variants": variants_table,
    "variants_before": variants_before_table,
    "history": history_table,
    "bench": bench_table,
    "epochs": epochs_table,
    "grader_runs": grader_runs_table,
}


def fill_readme(text, results):
    """README's text with each generated table (between its begin and end comments) made anew."""
    for name, make in README_TABLES.items():
        begin = f"<!-- begin {name} table: generated by tools/report.py -->"
        end = f"<!-- end {name} table -->"
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            tail = rest.split(end, 1)[1]
            text = f"{head}{begin}\n{from_entry({'r': results}, 'r', make)}\n{end}{tail}"
    return text


def write_sources(out, author):
    results = all_results(out)
    if not P.read_results(out):
        path = out / "figures" / "results.json"
        raise P.UserError(f"{path}: no results yet; run `python Project3.py` first.")
    check_together(out, results)
    macros, tables = generate(results, author)
    for phrase in unsupported_claims(macros, TEX.read_text()):
        print(
            f'report.py: warning: {TEX.name} says "{phrase}", which these results do not '
            "support: reword it (and its entry in CLAIMS) before handing the report in.",
            file=sys.stderr,
        )
    lines = ["% Generated by tools/report.py from results.json: do not edit."]
    lines += [f"\\resdef{{{name}}}{{{value}}}" for name, value in sorted(macros.items())]
    P.write_whole(out / "figures" / "numbers.tex", Path.write_text, "\n".join(lines) + "\n")
    for name, text in tables.items():
        P.write_whole(out / "figures" / name, Path.write_text, text)
    if out == ROOT:  # the repository's own numbers: README's tables follow them
        readme = README.read_text(encoding="utf-8")
        P.write_whole(README, Path.write_text, fill_readme(readme, results), encoding="utf-8")


def build(out):
    """latexmk in a temporary folder; report.pdf is replaced only by a PDF that built."""
    if not shutil.which("latexmk"):
        raise P.UserError(
            "LaTeX is not installed: the report needs latexmk and pdflatex (on Debian: apt-get "
            "install --no-install-recommends texlive-latex-recommended latexmk); "
            "figures/numbers.tex was written."
        )
    with tempfile.TemporaryDirectory(prefix="report-") as build_dir:
        build_dir = Path(build_dir)
        shutil.copytree(out / "figures", build_dir / "figures")  # a copy: Windows may lack symlinks
        shutil.copy(TEX, build_dir / "report.tex")
        command = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error"]
        command += ["-file-line-error", "report.tex"]
        run = subprocess.run(command, cwd=build_dir, capture_output=True, text=True)
        log = build_dir / "report.log"
        if log.is_file():
            P.write_whole(out / "report.log", copy_into, log)
        if run.returncode != 0:
            text = log.read_text(errors="replace") if log.is_file() else run.stdout
            errors = re.findall(r"^(?:!|\./report\.tex:\d+:) .*$", text, re.M)
            first = errors[0] if errors else "see the log"
            raise P.UserError(
                f"LaTeX failed on {TEX.name}: {first}; the log is {out / 'report.log'}, and "
                f"{out / 'report.pdf'} was left as it was."
            )
        P.write_whole(out / "report.pdf", copy_into, build_dir / "report.pdf")
    return out / "report.pdf"


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_into(tmp, source):
    shutil.copyfile(source, tmp)


def main(argv=None):
    parser = argparse.ArgumentParser(description="report.pdf from report.tex and results.json.")
    parser.add_argument("--out", help="folder holding figures/*.json; report.pdf goes there")
    parser.add_argument("--id", help="your directory ID, remembered in tools/author.json")
    parser.add_argument("--author", help="your name, remembered in tools/author.json")
    args = parser.parse_args(argv)
    out = out_dir(args.out, writing=True)
    author = read_author(args.id, args.author)
    check_name(author["author"])  # also a name that an older version saved
    write_sources(out, author)
    if args.id is not None or args.author is not None:
        text = json.dumps({"author": author["author"], "id": author["id"]}) + "\n"
        P.write_whole(AUTHOR, Path.write_text, text)
    pdf = build(out)
    title = {"author": author["author"], "id": author["id"], "sha256": sha256(pdf)}
    P.write_whole(out / "figures" / "title.json", Path.write_text, json.dumps(title) + "\n")
    note = " (with YOUR NAME and YOUR ID: set them with --id and --author)"
    P.print_safely(f"wrote {pdf}{note if is_placeholder(author) else ''}")


if __name__ == "__main__":
    sys.exit(run_tool(main))
