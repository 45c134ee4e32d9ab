"""Builds the side-by-side tables from run.sh's logs. Usage: python summarize.py OUT"""
import csv, glob, json, os, random, re, statistics, sys

out = sys.argv[1]
L = os.path.join(out, "logs")
R = os.path.join(out, "runs")
med = statistics.median


def rss_mb(name):
    try:
        t = open(os.path.join(L, name + ".time")).read()
        return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
    except (OSError, AttributeError):
        return None


def cpu_s(name):
    try:
        t = open(os.path.join(L, name + ".time")).read()
        return float(re.search(r"User time \(seconds\): ([0-9.]+)", t).group(1)) + \
            float(re.search(r"System time \(seconds\): ([0-9.]+)", t).group(1))
    except (OSError, AttributeError):
        return None


def result(name):
    try:
        for line in open(os.path.join(L, name + ".log")):
            if line.startswith("RESULT "):
                return json.loads(line[7:])
    except OSError:
        pass
    return None


def rounds(prefix):
    return sorted({re.sub(r"\.(log|time)$", "", os.path.basename(p)) for p in glob.glob(os.path.join(L, prefix + ".r*.time"))})


def epochs_from_log(run):
    # history.csv has each epoch's seconds at full precision; train.log (older runs) at 0.01 s.
    try:
        with open(os.path.join(R, run, "history.csv")) as f:
            head = f.readline().strip().split(",")
            col = head.index("seconds")
            return [float(line.split(",")[col]) for line in f if line.strip()]
    except (OSError, ValueError, IndexError):
        pass
    try:
        txt = open(os.path.join(R, run, "train.log")).read()
    except OSError:
        return []
    return [float(x) for x in re.findall(r"^epoch +\d+/\d+ \| loss [^|]+\| ([0-9.]+) s \(", txt, re.M)]


def metrics(run):
    try:
        return json.load(open(os.path.join(R, run, "metrics.json")))
    except OSError:
        return None


def fmt(x, d=3):
    return "—" if x is None else f"{x:.{d}f}"


def mrss(names):
    v = [rss_mb(n) for n in names if rss_mb(n) is not None]
    return med(v) if v else None


rows = []  # workload, rzoo value, peer name, peer value, rzoo rss, peer rss, n


def add(work, rz, peer, pv, rr, pr, note=""):
    ratio = rz / pv if (rz is not None and pv) else None
    rows.append((work, fmt(rz, 4), peer, fmt(pv, 4), fmt(ratio, 2), fmt(rr, 0), fmt(pr, 0), note))


# W1
rz_names = rounds("w1.rzoo")
rz_ep = [e for n in rz_names for e in epochs_from_log("w1-" + n.split(".")[-1])]
rz_mean = [metrics("w1-" + n.split(".")[-1]) for n in rz_names]
rz_mean = [m["train_seconds"] / m["epochs_run"] for m in rz_mean if m]
for peer, key, lab in (("recbole", "epochs", "RecBole BPR"), ("implicit", "iter_s", "implicit BPR (SGD, per iteration)")):
    names = rounds("w1." + peer)
    vals = [e for n in names if result(n) for e in result(n)[key]]
    add("W1 BPR-MF ML-100K, s/epoch (median)", med(rz_ep) if rz_ep else None, lab, med(vals) if vals else None,
        mrss(rz_names), mrss(names), f"rzoo {len(rz_ep)} epochs (history.csv; mean {fmt(med(rz_mean) if rz_mean else None, 4)}), peer {len(vals)}")
# The per-sample path: seconds per epoch from train_seconds / epochs (the log's 0.01 s resolution
# is too coarse at this speed).
sgd_names = rounds("w1.rzoosgd")
sgd = [metrics("w1sgd-" + n.split(".")[-1]) for n in sgd_names]
sgd = [m["train_seconds"] / m["epochs_run"] for m in sgd if m]
for peer, key, lab in (("recbole", "epochs", "RecBole BPR"), ("implicit", "iter_s", "implicit BPR (SGD, per iteration)")):
    names = rounds("w1." + peer)
    vals = [e for n in names if result(n) for e in result(n)[key]]
    if sgd:
        add("W1 BPR-MF per-sample SGD (sgd, batch_size 1), s/epoch", med(sgd), lab, med(vals) if vals else None,
            mrss(sgd_names), mrss(names), f"rzoo {len(sgd)} runs (train_seconds / epochs), peer {len(vals)}")
# W2
rz_names = rounds("w2.rzoo")
rz_ev = []
for n in rz_names:
    try:
        e = json.load(open(os.path.join(L, n + ".eval.json")))
        rz_ev += [e["valid"]["seconds"], e["test"]["seconds"]]
    except OSError:
        pass
names = rounds("w2.recbole")
vals = [e for n in names if result(n) for e in result(n)["eval_s"]]
add("W2 full-ranking eval, 6,040 x 3,706, s", med(rz_ev) if rz_ev else None, "RecBole full_sort (BPR)", med(vals) if vals else None,
    mrss(rz_names), mrss(names), f"rzoo {len(rz_ev)} evals, RecBole {len(vals)}")
# W3
rz_names = rounds("w3.rzoo")
rz_it = [metrics("w3-" + n.split(".")[-1])["train_seconds"] for n in rz_names if metrics("w3-" + n.split(".")[-1])]
acc = metrics("acc3-default")
per15 = acc["train_seconds"] / 15 if acc else None
# rzoo's 15-iteration fits / 15 (set-up included), CG (the default) and Cholesky, per round.
def per_iter15(prefix, run):
    ns = rounds(prefix)
    v = [metrics(run + n.split(".")[-1]) for n in ns]
    return ns, [m["train_seconds"] / 15 for m in v if m]
rz15_names, rz15 = per_iter15("w3.rzoo15", "w3x15-")
rz15c_names, rz15c = per_iter15("w3.rzoo15chol", "w3x15chol-")
for peer, lab in (("implicit-cg", "implicit ALS CG (3 steps)"), ("implicit-chol", "implicit ALS Cholesky")):
    names = rounds("w3." + peer)
    vals = [e for n in names if result(n) for e in result(n)["iter_s"]]
    add("W3 iALS 64f, NCF ML-1M train, s/iteration", med(rz_it) if rz_it else None, lab, med(vals) if vals else None,
        mrss(rz_names), mrss(names), f"rzoo: 1-iteration fit incl. set-up ({len(rz_it)} runs); 15-iteration fit / 15 = {fmt(per15, 4)}")
    if rz15:
        add("W3 iALS CG (rzoo default), 15-iteration fit / 15, s", med(rz15), lab, med(vals) if vals else None,
            mrss(rz15_names), mrss(names), f"{len(rz15)} runs")
    if rz15c:
        add("W3 iALS Cholesky, 15-iteration fit / 15, s", med(rz15c), lab, med(vals) if vals else None,
            mrss(rz15c_names), mrss(names), f"{len(rz15c)} runs")
# W4
rz_names = rounds("w4.rzoo")
rz_fit = [metrics("w4-" + n.split(".")[-1])["train_seconds"] for n in rz_names if metrics("w4-" + n.split(".")[-1])]
for peer, lab in (("recbole", "RecBole ItemKNN"), ("implicit-cosine", "implicit CosineRecommender"), ("implicit-itemitem", "implicit ItemItemRecommender")):
    names = rounds("w4." + peer)
    vals = [result(n)["fit_s"] for n in names if result(n)]
    add("W4 ItemKNN K=50 fit, NCF ML-1M train, s", med(rz_fit) if rz_fit else None, lab, med(vals) if vals else None,
        mrss(rz_names), mrss(names), f"{len(rz_fit)} / {len(vals)} runs")
# W5
rz_names = rounds("w5.rzoo")
rz_fit = [metrics("w5-" + n.split(".")[-1])["train_seconds"] for n in rz_names if metrics("w5-" + n.split(".")[-1])]
names = rounds("w5.recbole")
vals = [result(n)["fit_s"] for n in names if result(n)]
add("W5 EASE l2=250 fit, NCF ML-1M train, s", med(rz_fit) if rz_fit else None, "RecBole EASE", med(vals) if vals else None,
    mrss(rz_names), mrss(names), f"{len(rz_fit)} / {len(vals)} runs")
# W6
rz_names = rounds("w6.rzoo")
rz_ep = [e for n in rz_names for e in epochs_from_log("w6-" + n.split(".")[-1])]
names = rounds("w6.recbole")
vals = [e for n in names if result(n) for e in result(n)["epochs"]]
add("W6 NeuMF ML-100K, s/epoch (median)", med(rz_ep) if rz_ep else None, "RecBole NeuMF", med(vals) if vals else None,
    mrss(rz_names), mrss(names), f"{len(rz_ep)} / {len(vals)} epochs")

rows = [r for r in rows if not (r[1] == "—" and r[3] == "—")]  # workloads not run
if rows:
    print("## Speed (medians; ratio = rzoo / peer, < 1 means rzoo is faster)\n")
    print("| workload | rzoo | peer | peer value | ratio | rzoo peak RSS MB | peer peak RSS MB | n |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")

# S1-S3: sequential models, RecBole's sequential defaults on ML-100K (one run: rzoo first, then RecBole)
SEQ = (("s1", "S1 SASRec"), ("s2", "S2 BERT4Rec"), ("s3", "S3 GRU4Rec"))
if any(rounds(w + ".recbole") or rounds(w + ".rzoo-prefix") for w, _ in SEQ):
    print("\n## Sequential models on ML-100K, RecBole's sequential defaults (medians; ratio = rzoo / RecBole)\n")
    print("Time-ordered leave-one-out of u.data, max length 50, CE over all items, batch 2048, Adam 1e-3, full ranking "
          "of all 1,682 items for all 943 users. rzoo `prefix` = RecBole's rows (97,171 per epoch, one per prefix); "
          "rzoo `none` = one row per user with a target at every position (943 rows, the same targets). "
          "`prefix, micro-batches`: the same rows and steps, each batch's forward and backward in pieces of "
          "train.micro_batch_size rows (run.sh's SEQ_MICRO; the same gradient, less memory); `+ length buckets`: "
          "and train.sequence.bucket (rows of similar length share a batch, cut to its longest row).\n")
    print("| workload | system, setting | s/epoch (median) | epochs | ratio to RecBole | process CPU s / epochs | peak RSS MB | valid eval s | test eval s | valid NDCG@10 after the epochs | test NDCG@10 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for w, lab in SEQ:
        rb_names = rounds(w + ".recbole")
        rb = [result(n) for n in rb_names if result(n)]
        rb_ep = [e for x in rb for e in x["epochs"]]
        rb_med = med(rb_ep) if rb_ep else None
        for setting in ("prefix", "prefixmicro", "prefixbucket", "none"):
            names = rounds(f"{w}.rzoo-{setting}")
            runs = [f"{w}-{setting}-" + n.split(".")[-1] for n in names]
            ep = [e for r in runs for e in epochs_from_log(r)]
            ms = [metrics(r) for r in runs if metrics(r)]
            v = med([m["valid"]["seconds"] for m in ms]) if ms else None
            t = med([m["test"]["seconds"] for m in ms]) if ms else None
            vn = "; ".join(f"{m['valid']['metrics']['ndcg@10']:.4f}" for m in ms)
            tn = "; ".join(f"{m['test']['metrics']['ndcg@10']:.4f}" for m in ms)
            r = med(ep) / rb_med if (ep and rb_med) else None
            c = [cpu_s(n) for n in names if cpu_s(n) is not None]
            cpe = sum(c) / len(ep) if (c and ep) else None
            if not names:
                continue
            label = {"prefixmicro": "prefix, micro-batches", "prefixbucket": "prefix, micro-batches + length buckets"}.get(setting, setting)
            print(f"| {lab} | rzoo, augment {label} | {fmt(med(ep) if ep else None, 3)} | {len(ep)} | {fmt(r, 3)} | {fmt(cpe, 1)} | "
                  f"{fmt(mrss(names), 0)} | {fmt(v, 3)} | {fmt(t, 3)} | {vn or '—'} | {tn or '—'} |")
        v = med([x["valid_eval_s"] for x in rb]) if rb else None
        t = med([x["test_eval_s"] for x in rb]) if rb else None
        vn = "; ".join(f"{x['valid']['ndcg@10']:.4f}" for x in rb)
        tn = "; ".join(f"{x['test']['ndcg@10']:.4f}" for x in rb)
        rows_note = ", ".join(str(x["train_rows"]) for x in rb)
        c = [cpu_s(n) for n in rb_names if cpu_s(n) is not None]
        cpe = sum(c) / len(rb_ep) if (c and rb_ep) else None
        print(f"| {lab} | RecBole 1.2.1 ({rows_note or '?'} rows/epoch) | {fmt(rb_med, 3)} | {len(rb_ep)} | 1 | {fmt(cpe, 1)} | {fmt(mrss(rb_names), 0)} | "
              f"{fmt(v, 3)} | {fmt(t, 3)} | {vn or '—'} | {tn or '—'} |")
    print("\nPer-epoch seconds: " + "; ".join(
        f"{w} {k}: " + ", ".join(f"{e:.2f}" for e in es) for w, _ in SEQ for k, es in (
            ("rzoo prefix", [e for n in rounds(w + ".rzoo-prefix") for e in epochs_from_log(f"{w}-prefix-" + n.split(".")[-1])]),
            ("rzoo prefix micro", [e for n in rounds(w + ".rzoo-prefixmicro") for e in epochs_from_log(f"{w}-prefixmicro-" + n.split(".")[-1])]),
            ("rzoo prefix buckets", [e for n in rounds(w + ".rzoo-prefixbucket") for e in epochs_from_log(f"{w}-prefixbucket-" + n.split(".")[-1])]),
            ("rzoo none", [e for n in rounds(w + ".rzoo-none") for e in epochs_from_log(f"{w}-none-" + n.split(".")[-1])]),
            ("RecBole", [e for n in rounds(w + ".recbole") if result(n) for e in result(n)["epochs"]])) if es))
    print("RecBole data load + augmentation s: " + ", ".join(f"{n}: {result(n)['load_s']:.2f}" for w, _ in SEQ for n in rounds(w + ".recbole") if result(n)))
    print("process CPU s / epochs: user + system CPU seconds of the whole process (start-up, data, training, both "
          "evaluations) over its epochs; an upper bound of CPU per epoch, less sensitive to the machine's load than wall seconds.")
    print("RecBole ranks without masking the history (its sequential full ranking); rzoo masks the user's earlier items.")

# W3 accuracy
HAVE_ACC = bool(glob.glob(os.path.join(L, "acc*.time")))
if HAVE_ACC:
    print("\n## iALS, 15 iterations, NCF ML-1M test (99 given negatives)\n")
    print("| system | setting | HR@10 | NDCG@10 | s/iteration | peak RSS MB |")
    print("|---|---|---|---|---|---|")
for run, lab in (("acc3-default", "rzoo default (CG 3 steps; alpha 0, unobserved_weight 0.3, l2 0.003, nu 1)"),
                 ("acc3-default-chol", "rzoo default, solver cholesky"),
                 ("acc3-matched", "rzoo matched, CG (alpha 3, unobserved_weight 1, l2 16, nu 0)"),
                 ("acc3-matched-chol", "rzoo matched, solver cholesky")):
    m = metrics(run)
    if m:
        t = m["test"]["metrics"]
        print(f"| rzoo | {lab} | {t['hr@10']:.4f} | {t['ndcg@10']:.4f} | {m['train_seconds'] / 15:.4f} | {fmt(rss_mb('acc3.' + run.replace('acc3-', 'rzoo-')), 0)} |")
for n, lab in [(n, "implicit default (alpha 1, reg 0.01)") for n in rounds("w3.implicit-cg")[:1] + rounds("w3.implicit-chol")[:1]] + \
        [("acc3.implicit-cg-matched", "implicit matched (alpha 5, reg 20)"), ("acc3.implicit-chol-matched", "implicit matched (alpha 5, reg 20)")]:
    x = result(n)
    if x:
        print(f"| implicit {x['solver']} | {lab} | {x['hr10']:.4f} | {x['ndcg10']:.4f} | {x['median_iter_s']:.4f} | {fmt(rss_mb(n), 0)} |")

# Threads: rzoo at threads=THREADS (normally 1) against threads=2, same round (T2=1)
def per_unit(run):
    m = metrics(run)
    if not m:
        return None
    return m["train_seconds"] / max(m.get("epochs_run") or 1, 1)
# (label, run folder prefix, log prefix of the 1-thread job; the 2-thread job's log inserts ".t2")
T2_ROWS = [("W1 BPR-MF Adam batch 2048, s/epoch", "w1", "w1.rzoo"), ("W1 BPR-MF per-sample SGD, s/epoch", "w1sgd", "w1.rzoosgd"),
           ("W3 iALS CG, 15-iteration fit, s", "w3x15", "w3.rzoo15"), ("W4 ItemKNN fit, s", "w4", "w4.rzoo"),
           ("W5 EASE fit, s", "w5", "w5.rzoo"), ("W6 NeuMF, s/epoch", "w6", "w6.rzoo")]
def round_of(path):
    m = re.search(r"-r(\d+)(-t2)?$", path)
    return int(m.group(1)) if m else None


def cpu_share(log_prefix):
    """Median of /usr/bin/time's "Percent of CPU this job got" over a job's rounds (100 = one busy core)."""
    vals = []
    for n in rounds(log_prefix):
        try:
            m = re.search(r"Percent of CPU this job got: (\d+)%", open(os.path.join(L, n + ".time")).read())
            if m:
                vals.append(int(m.group(1)))
        except OSError:
            pass
    return med(vals) if vals else None


def median_interval(xs, reps=10000):
    """95% percentile-bootstrap interval of the median (seeded: the same logs give the same table)."""
    rng = random.Random(2020)
    ms = sorted(med([rng.choice(xs) for _ in xs]) for _ in range(reps))
    return ms[int(0.025 * reps)], ms[int(0.975 * reps) - 1]


# The 1- and 2-thread jobs of a round run back to back (which one first alternates), so each round
# gives one paired ratio; the median of those ratios and its bootstrap interval say whether the
# second thread made a difference that the machine's run-to-run noise does not explain.
t2_rows = []
for lab, run, logs in T2_ROWS:
    one = {round_of(p): per_unit(os.path.basename(p)) for p in glob.glob(os.path.join(R, run + "-r*")) if not p.endswith("-t2")}
    two = {round_of(p): per_unit(os.path.basename(p)) for p in glob.glob(os.path.join(R, run + "-r*-t2"))}
    one = {k: v for k, v in one.items() if v}
    two = {k: v for k, v in two.items() if v}
    if one and two:
        paired = [two[k] / one[k] for k in sorted(one) if k in two]
        lo, hi = median_interval(paired) if len(paired) >= 3 else (None, None)
        t2_rows.append((lab, med(one.values()), med(two.values()), len(one), len(two), paired, lo, hi,
                        cpu_share(logs), cpu_share(logs.replace(".", ".t2.", 1))))
if t2_rows:
    print("\n## Threads: rzoo with 1 and 2 threads, the same rounds (ratio > 1: the second thread slowed it down)\n")
    print("| workload | 1 thread | 2 threads | ratio 2/1 (medians) | paired ratio, median [95% interval] | slower? | CPU % (1 / 2 threads) | runs |")
    print("|---|---|---|---|---|---|---|---|")
    for lab, a, b, na, nb, paired, lo, hi, c1, c2 in t2_rows:
        if lo is None:
            pr, verdict = "-", "-"
        else:
            pr = f"{med(paired):.3f} [{lo:.3f}, {hi:.3f}]"
            verdict = "yes" if lo > 1 else ("no, faster" if hi < 1 else "no difference")
        cpu = " / ".join("?" if c is None else f"{c:.0f}" for c in (c1, c2))
        print(f"| {lab} | {a:.4f} | {b:.4f} | {b / a:.2f} | {pr} | {verdict} | {cpu} | {na} / {nb} |")
    print("\n(paired ratio: each round's 2-thread time over its 1-thread time; slower = the whole interval above 1."
          " CPU %: /usr/bin/time's share of the whole process, 100 = one busy core.)")

# W7 accuracy
if HAVE_ACC:
    print("\n## Accuracy on the identical ML-100K split (full ranking, test, @10)\n")
    print("| system | model (setting) | NDCG@10 | Recall@10 | HR@10 | MRR@10 | Precision@10 | best/ran epochs |")
    print("|---|---|---|---|---|---|---|---|")
LAB = {"pop": "Pop", "itemknn": "ItemKNN, rzoo default (asymmetric cosine 0.2, idf, shrinkage 10, 50 neighbours)",
       "itemknn-2": "ItemKNN, RecBole's defaults (cosine, 100 neighbours, no shrinkage)",
       "bpr": "BPR, rzoo default (128 factors, Adam lr 0.0005, batch 2048, init_std 0.02, l2 0.001)", "bpr-2": "BPR, RecBole's defaults (Adam lr 0.001)",
       "bpr-3": "BPR, per-sample path (sgd, batch 1; 64 factors, lr 0.01, l2 0.002, init_std 0.01, chosen on validation)",
       "ease": "EASE, l2 500 (rzoo default)", "ease-2": "EASE, l2 250 (RecBole default)",
       "neumf": "NeuMF, rzoo default (8 / 64-32-16-8, 4 negatives, batch 256)",
       "neumf-2": "NeuMF, RecBole's shape (64 / 128-128-64, 1 negative, batch 2048; no dropout)"}
for cmp in ("acc7", "acc7-neumf"):
    p = os.path.join(R, cmp, "compare.csv")
    if not os.path.exists(p):
        continue
    vals = {}
    for row in csv.DictReader(open(p)):
        vals.setdefault(row["model"], {})[row["metric"]] = float(row["value"])
    cj = {e["model"]: e for e in json.load(open(os.path.join(R, cmp, "compare.json")))} if os.path.exists(os.path.join(R, cmp, "compare.json")) else {}
    for model, v in vals.items():
        e = cj.get(model, {})
        print(f"| rzoo | {LAB.get(model, model)} | {v.get('ndcg@10', 0):.4f} | {v.get('recall@10', 0):.4f} | {v.get('hr@10', 0):.4f} | {v.get('mrr@10', 0):.4f} | {v.get('precision@10', 0):.4f} | {e.get('best_epoch', '')}/{e.get('epochs_run', '')} |")
for n in sorted(glob.glob(os.path.join(L, "acc7.recbole-*.log"))):
    name = os.path.basename(n)[:-4]
    x = result(name)
    if not x:
        continue
    t = x["test"]
    print(f"| RecBole | {x['model']} {x['params'] or '(defaults)'} | {t['ndcg@10']:.4f} | {t['recall@10']:.4f} | {t['hit@10']:.4f} | {t['mrr@10']:.4f} | {t['precision@10']:.4f} | ?/{x['epochs_run']} |")

if HAVE_ACC:
    print("\n## Peak RSS of the accuracy processes (MB)\n")
for n in sorted(glob.glob(os.path.join(L, "acc*.time"))):
    name = os.path.basename(n)[:-5]
    print(f"- {name}: {fmt(rss_mb(name), 0)}")
print("\nload during the run: " + " | ".join(open(os.path.join(L, "run.txt")).read().strip().splitlines()[-2:]))
