#!/usr/bin/env python3
"""The tables of docs/reproduction.md, from the reports Scripts/reproduce writes.

    python3 Scripts/reproduction_tables.py runs > /tmp/tables.md

Reads only summary.json files (standard library only): every number in the tables is one the
report computed (effects, bootstrap intervals, Holm-adjusted p-values, verdicts) or a mean over
trials the report stored; the grid's thresholds and monotonicity counts are computed here from
those means and say so.
"""
import json
import math
import os
import sys

FAMILIES = ["lenet5", "vgg-small", "resnet20", "alexnet", "vit"]
SIGMA = "ap3[gaussian:sigma2=1]"
DIAG = "ap3[gaussian-diag:estimate=row]"


def load(*parts):
    path = os.path.join(*parts, "summary.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def cell(text):
    """Text for a Markdown table cell (a bare | would end the cell)."""
    return text.replace("|", "\\|")


def short(text, limit=160):
    """`text` cut at a word before `limit` characters, with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(";,( ") + " …"


def fmt(x, digits=3):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def interval(ci):
    if not ci or ci.get("low") is None:
        return "–"
    return f"[{fmt(ci['low'])}, {fmt(ci['high'])}]"


def claim(summary, number):
    if summary is None:
        return None
    return next((c for c in summary["claims"] if c["claim"] == number), None)


def final_mean(config, quantity, epoch):
    for e in config["epochs"]:
        if e["epoch"] == epoch and quantity in e:
            return e[quantity]["mean"]
    return None


def baselines(runs):
    out = ["| family | trials | test accuracy (mean ± sd) | train accuracy | last two epochs' test accuracy, per trial | largest change over the last epoch |",
           "| --- | --- | --- | --- | --- | --- |"]
    for family in FAMILIES:
        s = load(runs, "reproduction", family)
        if s is None:
            continue
        b = s["baselines"]
        tests = [x["test_accuracy"] for x in b]
        mean = sum(tests) / len(tests)
        sd = math.sqrt(sum((t - mean) ** 2 for t in tests) / (len(tests) - 1)) if len(tests) > 1 else float("nan")
        trains = [x["train_accuracy"] for x in b]
        lasts = [x.get("test_accuracy_last_two_epochs") for x in b]
        pairs = ", ".join(f"{fmt(l[0], 2)} → {fmt(l[1], 2)}" for l in lasts if l)
        delta = max((abs(l[1] - l[0]) for l in lasts if l), default=float("nan"))
        out.append(f"| {family} | {len(b)} | {fmt(mean, 2)} ± {fmt(sd, 2)} % | {fmt(sum(trains) / len(trains), 2)} % | {pairs} | {fmt(delta, 2)} points |")
    return "\n".join(out)


def claim_tables(runs):
    out = []
    pooled = load(runs, "reproduction")
    pooled_diag = load(runs, "reproduction", "diag")
    for number in range(1, 8):
        c0 = claim(pooled, number)
        if c0 is None:
            continue
        out.append(f"#### Claim {number}. {c0['statement']}\n")
        out.append(f"Test: {c0['test']}. {c0['hypothesis']}. Target: {c0['target']}.\n")
        diag_cols = number in (1, 2, 3, 4, 5, 7)
        head = "| family | effect | 95 % interval | Holm p | verdict |"
        rule = "| --- | --- | --- | --- | --- |"
        if diag_cols:
            head += " effect, diagonal Σ | 95 % interval | verdict |"
            rule += " --- | --- | --- |"
        out += [head, rule]
        for family, parts in [(f, (runs, "reproduction", f)) for f in FAMILIES] + [("**pooled**", (runs, "reproduction"))]:
            s = load(*parts)
            c = claim(s, number)
            if c is None:
                continue
            row = f"| {family} | {fmt(c['effect'])} | {interval(c['ci95'])} | {fmt(c['p_holm'])} | {c['verdict']} |"
            if diag_cols:
                d = claim(load(*parts, "diag"), number)
                row += f" {fmt(d['effect']) if d else '–'} | {interval(d['ci95']) if d else '–'} | {d['verdict'] if d else '–'} |"
            out.append(row)
        out.append("")
        out.append("Evidence (pooled, σ²I): " + c0["evidence"] + "\n")
        if pooled_diag and diag_cols:
            out.append("Evidence (pooled, diagonal Σ): " + claim(pooled_diag, number)["evidence"] + "\n")
    return "\n".join(out)


def signed(runs):
    out = ["| family | AP3 (σ²I) vs \\|PD_test\\| | 95 % interval | AP3 vs signed PD_test | 95 % interval | AP2 vs \\|PD_test\\| |",
           "| --- | --- | --- | --- | --- | --- |"]
    for family, parts in [(f, (runs, "reproduction", f)) for f in FAMILIES] + [("**pooled**", (runs, "reproduction"))]:
        s = load(*parts)
        if s is None:
            continue

        def find(metric, target):
            return next((c for c in s["correlations"] if c["metric"] == metric and c["target"] == target
                         and c["method"] == "kendall" and c["scope"] == "configurations at final epoch"), None)
        a, b, c = find(SIGMA, "pd_test"), find(SIGMA, "pd_test_signed"), find("ap2", "pd_test")
        out.append(f"| {family} | {fmt(a['value']) if a else '–'} | {interval(a['ci95']) if a else '–'} | "
                   f"{fmt(b['value']) if b else '–'} | {interval(b['ci95']) if b else '–'} | {fmt(c['value']) if c else '–'} |")
    return "\n".join(out)


def ap2_vs_ap3(runs):
    out = ["| family | AP3 variant | mean \\|ρ_AP2\\| − \\|ρ_AP3\\| | 95 % interval | p | answer |", "| --- | --- | --- | --- | --- | --- |"]
    for family, parts in [(f, (runs, "reproduction", f)) for f in FAMILIES] + [("**pooled**", (runs, "reproduction"))]:
        s = load(*parts)
        if s is None:
            continue
        for c in s["ap2_vs_ap3"]:
            out.append(f"| {family} | {c['ap3']} | {fmt(c['difference_abs_spearman'])} | {interval(c['ci95'])} | {fmt(c['p'])} | {c['answer']} |")
    return "\n".join(out)


def grid(runs):
    out = ["| family | method | largest p with PD_test ≤ 1 point | PD_test there | first p above 1 point | AP2 decreases in p | AP3 (σ²I) decreases | AP3 (diag) decreases | PD_test decreases |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for family in ["lenet5", "vgg-small"]:
        s = load(runs, "reproduction-grid", family)
        if s is None:
            continue
        final = s["final_epoch"]
        for method in ["lowest", "random", "highest", "structured-l2"]:
            cs = sorted((c for c in s["configurations"] if c["method"] == method), key=lambda c: c["sparsity"])
            if not cs:
                continue
            pd = [(c["sparsity"], final_mean(c, "pd_test", final)) for c in cs]
            # The largest p such that every sparsity up to it stays within 1 point.
            best = None
            for p, v in pd:
                if v is None or v > 1:
                    break
                best = (p, v)
            first_above = next((p for p, v in pd if v is not None and v > 1), None)

            def decreases(q):
                vals = [final_mean(c, q, final) for c in cs]
                vals = [v for v in vals if v is not None]
                return f"{sum(1 for a, b in zip(vals, vals[1:]) if b < a)} of {max(0, len(vals) - 1)}"
            out.append(f"| {family} | {method} | {fmt(best[0], 2) if best else 'none'} | {fmt(best[1], 2) if best else '–'} | "
                       f"{fmt(first_above, 2) if first_above is not None else 'none'} | {decreases('ap2')} | {decreases(SIGMA)} | {decreases(DIAG)} | {decreases('pd_test')} |")
    return "\n".join(out)


def subset_claims(title, rows):
    out = [f"| {title} | claim | effect | 95 % interval | Holm p | verdict | evidence |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for label, s in rows:
        if s is None:
            continue
        for c in s["claims"]:
            if c["verdict"] == "not enough data" or c["claim"] == 6:
                continue
            out.append(f"| {label} | {c['claim']} | {fmt(c['effect'])} | {interval(c['ci95'])} | {fmt(c['p_holm'])} | {c['verdict']} | {cell(short(c['evidence']))} |")
    return "\n".join(out)


def main():
    runs = sys.argv[1] if len(sys.argv) > 1 else "runs"
    print("### Baselines\n")
    print(baselines(runs) + "\n")
    print("### Claims (AP3 with Σ = σ²I, and with an estimated diagonal Σ)\n")
    print(claim_tables(runs))
    print("### Signed PD next to |PD| (Kendall τ-b across configurations at the final epoch)\n")
    print(signed(runs) + "\n")
    print("### Open question 1: AP2 or AP3?\n")
    print(ap2_vs_ap3(runs) + "\n")
    print("### Open question 2: the fine sparsity grid (final epoch, means over 3 trials)\n")
    print(grid(runs) + "\n")
    print("### Open question 3: structured (row) pruning of the last layer\n")
    print(subset_claims("family", [(f, load(runs, "reproduction-grid", f, "structured")) for f in ["lenet5", "vgg-small"]]) + "\n")
    print("### Scopes (LeNet-5)\n")
    print(subset_claims("scope", [(s, load(runs, "reproduction-scopes", s)) for s in ["last", "per-layer", "global"]]) + "\n")


if __name__ == "__main__":
    main()
