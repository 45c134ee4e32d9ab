#!/usr/bin/env python3
"""Hyperparameter selection on the validation split, honestly: trains every combination of a
grid with `rzoo train`, picks the one with the best VALIDATION metric (never looking at test),
then reports that run's test metrics. With --seeds, the chosen setting is re-run with each seed
and the test metrics are averaged (mean and spread).

usage: tune.py CONFIG --out DIR --metric ndcg@10 [--lower] --grid 'model.neighbors=[50,100]' ...
                 [--set KEY=VALUE ...] [--seeds 1,2,3] [--report hr@10,ndcg@10] [--label NAME]
Prints one line: label, chosen setting, valid metric, test metrics (mean ± sd over seeds).
--also-eval KEY=VALUE (eval.* settings, repeatable) re-evaluates the final runs under other
evaluation settings (e.g. eval.protocol=full) with `rzoo evaluate` and prints those test metrics
too. In --set and --refit values, {seed} becomes the run's seed (the first of --seeds for the grid
runs), e.g. to pre-train each seed from the same seed's run. --summary FILE writes the chosen setting, the
final run folders and their metrics as JSON. --grid-with-first-seed runs the grid with the first
seed, whose final run is then the chosen grid run (one run fewer).
A run folder that already holds metrics.json is reused, and one with only last.pt is resumed (so an
interrupted tuning continues): delete --out after changing the code. --jobs N trains N runs at once.
--base SUMMARY continues an earlier tuning (coordinate-wise): its chosen setting is fixed (--set)
and this grid tunes further keys. The first value of each --grid must be the one the earlier runs
used (the default, usually): that combination links the earlier run folders instead of retraining.
--refit-best-epoch (with --refit dataset.split.valid=none) refits an iterative model: each seed's
final run is trained with validation as usual, then trained again on train + valid for the number
of epochs its validation chose (train.epochs = that run's best epoch, no early stopping); the
refit runs give the reported test metrics, the validated ones are kept in the summary.
"""
import argparse, itertools, json, os, statistics, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RZOO = os.path.join(ROOT, "build", "rzoo")


def run(config, sets, out, name):
    run_dir = os.path.join(out, name)
    if not os.path.exists(os.path.join(run_dir, "metrics.json")):
        if os.path.exists(os.path.join(run_dir, "last.pt")):
            # Interrupted: continue from its last complete epoch (the thread count may change).
            cmd = [RZOO, "train", "--resume", run_dir, "--quiet"]
            for s in sets:
                if s.startswith("threads="):
                    cmd += ["--set", s]
        else:
            cmd = [RZOO, "train", config, "--quiet", "--set", f"output_dir={out}", "--set", f"run_name={name}"]
            for s in sets:
                cmd += ["--set", s]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"tune: {' '.join(cmd)} failed:\n{r.stderr}")
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)


def also_eval(run_dir, sets):
    tag = "eval" + "".join("-" + "".join(c if c.isalnum() or c in "._" else "-" for c in s[len("eval."):]) for s in sets)
    path = os.path.join(run_dir, tag, "eval.json")
    if not os.path.exists(path):
        cmd = [RZOO, "evaluate", run_dir, "--quiet"]
        for x in sets:
            cmd += ["--set", x]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"tune: {' '.join(cmd)} failed:\n{r.stderr}")
    with open(path) as f:
        return json.load(f)


def split_list(text):
    """'[a, [b, c], d]' -> ['a', '[b, c]', 'd']: top-level items of a YAML flow list."""
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        sys.exit(f"tune: a grid must be a list, got {text}")
    items, depth, cur = [], 0, ""
    for ch in text[1:-1]:
        if ch == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
            continue
        depth += ch in "[{"
        depth -= ch in "]}"
        cur += ch
    if cur.strip():
        items.append(cur.strip())
    return items


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--out", required=True)
    ap.add_argument("--metric", required=True)
    ap.add_argument("--lower", action="store_true", help="lower is better (rmse)")
    ap.add_argument("--grid", action="append", default=[])
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--seeds", default="")
    ap.add_argument("--report", default="")
    ap.add_argument("--label", default="")
    ap.add_argument("--also-eval", action="append", default=[])
    ap.add_argument("--summary", default="")
    ap.add_argument("--jobs", type=int, default=1,
                    help="runs trained at once (give each fewer threads: --set threads=1)")
    ap.add_argument("--grid-with-first-seed", action="store_true",
                    help="run the grid with the first of --seeds, so that the chosen setting's run is "
                         "also that seed's final run (one run fewer; for slow models)")
    ap.add_argument("--refit", action="append", default=[],
                    help="KEY=VALUE applied to the final runs only, e.g. dataset.split.valid=none to refit "
                         "the chosen setting on all training data (validation is used for the choice only)")
    ap.add_argument("--refit-best-epoch", action="store_true",
                    help="with --refit: train each seed's final run with validation first, then refit it "
                         "for its best validation epoch count (iterative models)")
    ap.add_argument("--base", default="",
                    help="summary JSON of an earlier tuning: fix its chosen setting; the first value of "
                         "every --grid is what its runs used, so that combination reuses them")
    a = ap.parse_args()
    if a.refit_best_epoch and not a.refit:
        sys.exit("tune: --refit-best-epoch needs --refit (e.g. --refit dataset.split.valid=none)")
    # With --refit alone the final runs are the refit ones; with --refit-best-epoch each seed has
    # a validated final run (which gives the epoch count) and a refit one.
    validated_finals = not a.refit or a.refit_best_epoch
    base_runs, base_chosen, base_grid_run = {}, {}, None
    if a.base:
        with open(a.base) as f:
            base = json.load(f)
        base_chosen = base["chosen"]  # includes what its own --base chose
        a.set = a.set + [f"{k}={v}" for k, v in base_chosen.items()]
        for g in a.grid:
            k, v = g.split("=", 1)
            if k in base_chosen and split_list(v)[0] != str(base_chosen[k]):
                sys.exit(f"tune: --grid {g}: with --base the first value must be the earlier choice, "
                         f"{k}={base_chosen[k]}")
        base_runs = {str(r["seed"]): r["run"] for r in base["finals"]}
        base_grid_run = base.get("grid_run")  # the chosen grid run, when the grid ran without a seed
    keys, values = [], []
    for g in a.grid:
        k, v = g.split("=", 1)
        keys.append(k)
        values.append(split_list(v))
    seeds = [s for s in a.seeds.split(",") if s] or [None]
    seeded = lambda sets, s: [x.replace("{seed}", str(s if s is not None else "")) for x in sets]
    best = None
    combos = list(itertools.product(*values)) if keys else [()]
    # The grid run is the first seed's final run (reused below) when there is one combination
    # (nothing to choose) or with --grid-with-first-seed (a run fewer per tuning).
    first_seed = seeds[0] is not None and validated_finals and (len(combos) == 1 or a.grid_with_first_seed)
    grid = []
    for combo in combos:
        sets = seeded(a.set, seeds[0]) + [f"{k}={v}" for k, v in zip(keys, combo)]
        name = "_".join(f"{k.split('.')[-1]}-{v}" for k, v in zip(keys, combo)) or "default"
        name = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
        grid.append((combo, sets, name))
    if base_runs and grid:
        # The combination of every grid's first value is the earlier tuning's chosen setting: its
        # runs (one per seed, and its grid run) stand in for this tuning's, as links.
        os.makedirs(a.out, exist_ok=True)
        links = [(grid[0][2] + (f"_seed{s}" if s != "None" else ""), run_dir) for s, run_dir in base_runs.items()]
        if base_grid_run and not first_seed:
            links.append((grid[0][2], base_grid_run))
        for name, run_dir in links:
            link = os.path.join(a.out, name)
            if not os.path.lexists(link):
                os.symlink(os.path.relpath(os.path.abspath(run_dir), os.path.abspath(a.out)), link)
    runs = []
    if len(grid) == 1 and first_seed:
        # Nothing to choose: the seeds' runs (below) are all there is; the first gives the
        # validation value.
        best = (None, grid[0][1], grid[0][0], grid[0][2])
        grid = []
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        runs = list(pool.map(lambda g: run(a.config, g[1] + ([f"seed={seeds[0]}"] if first_seed else []), a.out,
                                           g[2] + (f"_seed{seeds[0]}" if first_seed else "")), grid))
    for (combo, sets, name), m in zip(grid, runs):
        v = m["valid"]["metrics"][a.metric]
        if v is None:
            continue
        better = best is None or (v < best[0] if a.lower else v > best[0])
        if better:
            best = (v, sets, combo, name)
    if best is None:
        sys.exit("tune: no run produced a validation value")
    report = a.report.split(",") if a.report else [a.metric]
    tests = {r: [] for r in report}
    extra = {r: [] for r in report}
    finals = []
    grid_sets = best[1][len(a.set):]
    suffix = lambda s: f"_seed{s}" if s else ""
    seed_set = lambda s: [f"seed={s}"] if s else []
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        validated = [None] * len(seeds)
        if validated_finals:
            validated = list(pool.map(lambda s: run(a.config, seeded(a.set, s) + grid_sets + seed_set(s), a.out,
                                                    best[3] + suffix(s)), seeds))
        final_runs = [(best[3] + suffix(s), None) for s in seeds]
        if a.refit:
            final_runs = []
            for s, v in zip(seeds, validated):
                epochs = []
                if a.refit_best_epoch:
                    if not v.get("best_epoch"):
                        sys.exit(f"tune: --refit-best-epoch: {best[3] + suffix(s)} has no best epoch")
                    epochs = [f"train.epochs={v['best_epoch']}"]
                final_runs.append((best[3] + "_refit" + suffix(s),
                                   seeded(a.set, s) + grid_sets + seeded(a.refit, s) + epochs + seed_set(s)))
            final_metrics = list(pool.map(lambda f: run(a.config, f[1], a.out, f[0]), final_runs))
        else:
            final_metrics = validated
    if best[0] is None:
        best = (validated[0]["valid"]["metrics"][a.metric],) + best[1:]
    for i, (s, (name, _), m) in enumerate(zip(seeds, final_runs, final_metrics)):
        finals.append({"seed": s, "run": os.path.join(a.out, name), "test": m["test"]["metrics"]})
        if a.refit_best_epoch:
            finals[-1].update(validated_run=os.path.join(a.out, best[3] + suffix(s)), epochs=validated[i]["best_epoch"],
                              validated_test=validated[i]["test"]["metrics"])
            if a.also_eval:
                finals[-1]["validated_also_eval"] = also_eval(finals[-1]["validated_run"], a.also_eval)["test"]["metrics"]
        for r in report:
            tests[r].append(m["test"]["metrics"][r])
        if a.also_eval:
            e = also_eval(os.path.join(a.out, name), a.also_eval)
            finals[-1]["also_eval"] = e["test"]["metrics"]
            for r in report:
                extra[r].append(e["test"]["metrics"][r])
    chosen = ", ".join(f"{k}={v}" for k, v in zip(keys, best[2])) or "defaults"

    def fmt(values):
        parts = []
        for r in report:
            xs = values[r]
            mean = statistics.mean(xs)
            sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
            parts.append(f"{r} {mean:.4f}" + (f" ± {sd:.4f} (n={len(xs)})" if len(xs) > 1 else ""))
        return ", ".join(parts)

    line = (f"{a.label or os.path.basename(a.config)}: chosen on valid {a.metric} {best[0]:.4f} [{chosen}]; "
            f"test{' (refit on train + valid)' if a.refit else ''}: " + fmt(tests))
    if a.also_eval:
        line += f"; test with {' '.join(a.also_eval)}: " + fmt(extra)
    if a.refit_best_epoch:
        line += ("; before refit (epochs " + ",".join(str(f["epochs"]) for f in finals) + "): " +
                 fmt({r: [f["validated_test"][r] for f in finals] for r in report}))
        if a.also_eval:
            line += f", with {' '.join(a.also_eval)}: " + fmt({r: [f["validated_also_eval"][r] for f in finals] for r in report})
    print(line, flush=True)
    if a.summary:
        with open(a.summary, "w") as f:
            # "chosen": every setting chosen so far, the earlier stages' (--base) included.
            json.dump({"label": a.label, "chosen": {**base_chosen, **dict(zip(keys, best[2]))}, "chosen_name": best[3],
                       "grid_run": None if first_seed else os.path.join(a.out, best[3]),
                       "valid": best[0], "finals": finals}, f, indent=1)


if __name__ == "__main__":
    main()
