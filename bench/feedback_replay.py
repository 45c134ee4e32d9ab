#!/usr/bin/env python3
"""The feedback-loop replay benchmark (issue 23): a ratings file replayed in time order in weekly
steps. Step t's models know everything before week t and are scored on week t (NDCG@10 over the
week's items, the users' earlier items removed from the ranking, see bench/replay_eval.cpp):

  never updated   the model trained on the data before week 0, served as it is
  rzoo update     that model updated once a week: `rzoo update PREVIOUS --data week_{t-1}.csv`
  full retraining trained from scratch every week on the same data (`dataset.append` of every
                  week so far: the same split, ids and training pairs as the updated model)

Every run uses the same experiment (the model's configs/models defaults, 1 thread, a random
90/10 train/validation split of the first part for early stopping; no test part: the weeks are
the test). Update and retraining alternate within each step, so machine noise hits both.

usage: python3 bench/feedback_replay.py DATA --steps N [--model bpr] [--out DIR] [--holdout-weeks H]
         [--set KEY=VALUE ...]            (every run)
         [--update-set KEY=VALUE ...]     (the updates only, e.g. train.replay=2)
DATA: a MovieLens folder with u.data (100K) or ratings.csv (latest, 20M, 25M).
Writes DIR/replay.json, DIR/replay.md and DIR/replay.html (the three curves, inline SVG).
"""
import argparse
import csv
import html
import json
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WEEK = 7 * 86400


def load(path):
    if os.path.exists(os.path.join(path, "u.data")):
        with open(os.path.join(path, "u.data")) as f:
            return [(u, i, r, int(t)) for u, i, r, t in (line.split("\t") for line in f.read().split("\n") if line)]
    with open(os.path.join(path, "ratings.csv")) as f:
        rows = csv.reader(f)
        next(rows)
        return [(u, i, r, int(t)) for u, i, r, t in rows]


def write_rows(path, rows):
    with open(path, "w") as f:
        f.write("user,item,rating,timestamp\n")
        for u, i, r, t in rows:
            f.write(f"{u},{i},{r},{t}\n")


def run(cmd, log):
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    secs = time.monotonic() - t0
    log.write(" ".join(cmd) + f"\n{p.stdout}\n[exit {p.returncode}, {secs:.2f} s]\n")
    if p.returncode not in (0, 3):  # 3: the (empty) test part, allowed
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stdout[-3000:]}")
    return secs


def timed(cmd, run_dir, log):
    """Runs cmd for run_dir, or reads back its wall time when run_dir is already finished (a rerun of the
    replay, e.g. after an evaluation error, repeats no training)."""
    mark = os.path.join(run_dir, "replay_seconds")
    if os.path.exists(os.path.join(run_dir, "metrics.json")):
        with open(mark) as f:
            return float(f.read())
    secs = run(cmd, log)
    with open(mark, "w") as f:
        f.write(f"{secs:.6f}\n")
    return secs


def train_seconds(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)["train_seconds"]


def svg_plot(steps, series, title):
    w, h, pad = 720, 320, 48
    values = [v for _, vs in series for v in vs if v is not None]
    lo, hi = 0.0, max(values) * 1.1 if values else 1.0
    def x(k):
        return pad + (w - 2 * pad) * (k / max(1, len(steps) - 1))
    def y(v):
        return h - pad - (h - 2 * pad) * (v - lo) / (hi - lo)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<text x="{w/2}" y="18" text-anchor="middle" font-size="14">{html.escape(title)}</text>',
           f'<line x1="{pad}" y1="{h-pad}" x2="{w-pad}" y2="{h-pad}" stroke="#444"/>',
           f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h-pad}" stroke="#444"/>']
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        out.append(f'<text x="{pad-6}" y="{y(v)+4}" text-anchor="end">{v:.3f}</text>')
        out.append(f'<line x1="{pad}" y1="{y(v)}" x2="{w-pad}" y2="{y(v)}" stroke="#ddd"/>')
    for k, s in enumerate(steps):
        if len(steps) <= 26 or k % 5 == 0:
            out.append(f'<text x="{x(k)}" y="{h-pad+16}" text-anchor="middle">{s}</text>')
    out.append(f'<text x="{w/2}" y="{h-8}" text-anchor="middle">week (step)</text>')
    colours = ["#888888", "#1f77b4", "#d62728"]
    for n, (name, vs) in enumerate(series):
        pts = " ".join(f"{x(k):.1f},{y(v):.1f}" for k, v in enumerate(vs) if v is not None)
        out.append(f'<polyline fill="none" stroke="{colours[n]}" stroke-width="2" points="{pts}"/>')
        out.append(f'<rect x="{w-pad-170}" y="{pad+n*18-10}" width="12" height="12" fill="{colours[n]}"/>')
        out.append(f'<text x="{w-pad-152}" y="{pad+n*18}">{html.escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--holdout-weeks", type=int, default=0,
                    help="drop the last N weeks first: a validation replay on earlier data, for choosing the "
                         "update's settings without looking at the replay that is reported")
    ap.add_argument("--model", default="bpr")
    ap.add_argument("--out", default="")
    ap.add_argument("--rzoo", default=os.path.join(ROOT, "build", "rzoo"))
    ap.add_argument("--eval", default=os.path.join(ROOT, "build", "rzoo_bench_replay_eval"))
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--update-set", action="append", default=[])
    a = ap.parse_args()
    name = os.path.basename(os.path.normpath(a.data))
    out = os.path.abspath(a.out or os.path.join(ROOT, "build", "replay", f"{name}-{a.model}"))
    data_dir = os.path.join(out, "data")
    os.makedirs(data_dir, exist_ok=True)
    log = open(os.path.join(out, "replay.log"), "a")

    rows = sorted(load(a.data), key=lambda r: r[3])
    if a.holdout_weeks > 0:
        cut = rows[-1][3] + 1 - a.holdout_weeks * WEEK
        rows = [r for r in rows if r[3] < cut]
    start = rows[-1][3] + 1 - a.steps * WEEK  # week t is [start + t WEEK, start + (t + 1) WEEK)
    bounds = [start + t * WEEK for t in range(a.steps + 1)]
    write_rows(os.path.join(data_dir, "base.csv"), [r for r in rows if r[3] < start])
    for t in range(a.steps):
        write_rows(os.path.join(data_dir, f"week{t}.csv"), [r for r in rows if bounds[t] <= r[3] < bounds[t + 1]])
        write_rows(os.path.join(data_dir, f"history{t}.csv"), [r for r in rows if r[3] < bounds[t]])
    runs = os.path.join(out, "runs")
    exp = os.path.join(out, "exp.yaml")
    with open(exp, "w") as f:
        f.write(f"""# Written by bench/feedback_replay.py.
model: {a.model}
dataset:
  name: replay-{name}
  format: csv
  path: {os.path.join(data_dir, "base.csv")}
  columns: {{user: user, item: item, rating: rating, timestamp: timestamp}}
  cache: {{enabled: false}}
  split: {{method: random, ratios: [0.9, 0.1, 0.0]}}
train: {{progress: "false"}}
threads: 1
output_dir: {runs}
""")
    sets = []
    for s in a.set:
        sets += ["--set", s]
    usets = []
    for s in a.update_set:
        usets += ["--set", s]
    rz = a.rzoo
    base = os.path.join(runs, "base")
    steps = []
    secs = timed([rz, "train", exp, "--quiet", "--allow-empty", "--set", "run_name=base"] + sets, base, log)
    steps.append({"step": 0, "base_seconds": secs, "base_train_seconds": train_seconds(base)})
    prev = base
    # A week without interactions (thin data: ml-latest-small's last years) brings nothing to learn:
    # neither arm runs after it (both serve the models they had, 0 s), and retraining's list of
    # appended weeks leaves it out.
    def week_rows(w):
        with open(os.path.join(data_dir, f"week{w}.csv")) as f:
            return sum(1 for _ in f) - 1
    empty = {w for w in range(a.steps) if week_rows(w) == 0}
    upd_dirs, ret_dirs = {0: base}, {0: base}
    for t in range(1, a.steps):
        upd = os.path.join(runs, f"base-u{t}")
        ret = os.path.join(runs, f"retrain-{t}")
        if t - 1 in empty:
            upd_dirs[t], ret_dirs[t] = upd_dirs[t - 1], ret_dirs[t - 1]
            steps.append({"step": t, "update_seconds": 0.0, "update_train_seconds": 0.0, "retrain_seconds": 0.0,
                          "retrain_train_seconds": 0.0, "skipped": "previous week empty"})
            continue
        upd_dirs[t], ret_dirs[t] = upd, ret
        weeks = ",".join('"' + os.path.join(data_dir, f"week{w}.csv") + '"' for w in range(t) if w not in empty)
        order = ["update", "retrain"] if t % 2 else ["retrain", "update"]
        rec = {"step": t}
        for which in order:
            if which == "update":
                # Named for its step (rzoo update would number it after its parent: one less after a skip).
                rec["update_seconds"] = timed([rz, "update", prev, "--data", os.path.join(data_dir, f"week{t-1}.csv"),
                                               "--quiet", "--allow-empty", "--set", f"run_name=base-u{t}"] + sets + usets, upd, log)
                rec["update_train_seconds"] = train_seconds(upd)
            else:
                rec["retrain_seconds"] = timed([rz, "train", exp, "--quiet", "--allow-empty", "--set", f"run_name=retrain-{t}",
                                                "--set", f"dataset.append=[{weeks}]"] + sets, ret, log)
                rec["retrain_train_seconds"] = train_seconds(ret)
        steps.append(rec)
        prev = upd
    # Scores on every week.
    for t in range(a.steps):
        dirs = [base] if t == 0 else [base, upd_dirs[t], ret_dirs[t]]
        p = subprocess.run([a.eval, os.path.join(data_dir, f"history{t}.csv"), os.path.join(data_dir, f"week{t}.csv"),
                            os.path.join(base, "users.txt")] + dirs, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            sys.exit(f"evaluation of week {t} failed:\n{p.stderr[-3000:]}")
        res = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
        arms = ["never", "update", "retrain"]
        for k, r in enumerate(res if t else res * 3):
            steps[t][arms[k]] = r

    def pooled(arm, key="ndcg@10", users="users"):
        n = sum(s[arm][users] for s in steps if s[arm][users] > 0)
        return sum(s[arm][key] * s[arm][users] for s in steps if s[arm][users] > 0) / n if n else float("nan")

    def total(key):
        return sum(s.get(key, 0.0) for s in steps[1:])

    summary = {
        "data": a.data, "model": a.model, "steps": a.steps, "sets": a.set, "update_sets": a.update_set,
        "user_weeks": sum(s["never"]["users"] for s in steps),
        "ndcg@10": {arm: pooled(arm) for arm in ("never", "update", "retrain")},
        "start_users_ndcg@10": {arm: pooled(arm, "start_ndcg@10", "start_users") for arm in ("never", "update", "retrain")},
        "seconds": {"update": total("update_seconds"), "retrain": total("retrain_seconds"),
                    "update_train": total("update_train_seconds"), "retrain_train": total("retrain_train_seconds")},
    }
    # Paired bootstrap over the (user, week) values: 95% intervals of update / retraining and of
    # update - never updated (10,000 resamples, seeded).
    vals = {arm: [v for st in steps for v in st[arm]["per_user"]] for arm in ("never", "update", "retrain")}
    rng = random.Random(2020)
    n_uw = len(vals["never"])
    ratios, gains = [], []
    for _ in range(10000):
        idx = [rng.randrange(n_uw) for _ in range(n_uw)]
        u = sum(vals["update"][i] for i in idx)
        r = sum(vals["retrain"][i] for i in idx)
        nv = sum(vals["never"][i] for i in idx)
        if r > 0:
            ratios.append(u / r)
        gains.append((u - nv) / n_uw)
    ratios.sort()
    gains.sort()
    def ci(xs):
        return [xs[int(0.025 * (len(xs) - 1))], xs[int(0.975 * (len(xs) - 1))]] if xs else [float("nan")] * 2
    summary["update_vs_retrain_ndcg_ci95"] = ci(ratios)
    summary["update_minus_never_ci95"] = ci(gains)
    s = summary
    s["update_vs_retrain_ndcg"] = s["ndcg@10"]["update"] / s["ndcg@10"]["retrain"]
    s["update_vs_retrain_time"] = s["seconds"]["update"] / s["seconds"]["retrain"]
    with open(os.path.join(out, "replay.json"), "w") as f:
        json.dump({"summary": summary, "steps": steps}, f, indent=1)
    lines = [f"# Feedback replay: {name}, {a.model}, {a.steps} weekly steps", "",
             "| week | users | never updated | rzoo update | full retraining | update s | retrain s |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    def f4(v):
        return "-" if v is None else f"{v:.4f}"

    for st in steps:
        lines.append(f"| {st['step']} | {st['never']['users']} | {f4(st['never']['ndcg@10'])} | {f4(st['update']['ndcg@10'])} | "
                     f"{f4(st['retrain']['ndcg@10'])} | {st.get('update_seconds', float('nan')):.2f} | "
                     f"{st.get('retrain_seconds', float('nan')):.2f} |")
    lines += ["", f"Pooled NDCG@10 over {s['user_weeks']} user-weeks: never {s['ndcg@10']['never']:.4f}, "
              f"update {s['ndcg@10']['update']:.4f}, retrain {s['ndcg@10']['retrain']:.4f} "
              f"(update / retrain {s['update_vs_retrain_ndcg']:.3f}, paired bootstrap 95% interval "
              f"[{s['update_vs_retrain_ndcg_ci95'][0]:.3f}, {s['update_vs_retrain_ndcg_ci95'][1]:.3f}]; update - never "
              f"[{s['update_minus_never_ci95'][0]:+.4f}, {s['update_minus_never_ci95'][1]:+.4f}]); users known at the start only: never "
              f"{s['start_users_ndcg@10']['never']:.4f}, update {s['start_users_ndcg@10']['update']:.4f}, retrain "
              f"{s['start_users_ndcg@10']['retrain']:.4f}.",
              f"Time over the replay (wall, each command): update {s['seconds']['update']:.1f} s, retrain "
              f"{s['seconds']['retrain']:.1f} s (ratio {s['update_vs_retrain_time']:.3f}); training alone "
              f"{s['seconds']['update_train']:.1f} s vs {s['seconds']['retrain_train']:.1f} s."]
    md = "\n".join(lines) + "\n"
    with open(os.path.join(out, "replay.md"), "w") as f:
        f.write(md)
    plot = svg_plot([st["step"] for st in steps],
                    [("never updated", [st["never"]["ndcg@10"] for st in steps]),
                     ("rzoo update", [st["update"]["ndcg@10"] for st in steps]),
                     ("full retraining", [st["retrain"]["ndcg@10"] for st in steps])],
                    f"NDCG@10 on the next week: {name}, {a.model}")
    with open(os.path.join(out, "replay.html"), "w") as f:
        f.write(f"<!doctype html><meta charset='utf-8'><title>rzoo feedback replay</title>"
                f"<body style='font-family:sans-serif;max-width:900px'>{plot}<pre style='white-space:pre-wrap'>{html.escape(md)}</pre></body>\n")
    print(md)
    print("written:", os.path.join(out, "replay.html"))


if __name__ == "__main__":
    main()
