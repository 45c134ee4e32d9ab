#!/usr/bin/python3
"""Self-test of check_metrics.py on a tiny hand-computed run folder.

Usage: selftest_check_metrics.py     (exit 0 = pass, 1 = fail, 77 = numpy missing: skipped)

Builds a fake rzoo run folder in a temporary directory with values worked out by hand (below),
checks that check_metrics.py accepts it, then that it rejects corrupted copies (exit 1) and
reports bad usage / missing files (exit 2).
"""
import json
import os
import shutil
import subprocess
import sys
import math
import random
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "check_metrics.py")
NAN = float("nan")

# ------------------------------------------------------------------------------------------------
# The fake run. n_users = 4 (users.txt), n_items = 6, ks = {2, 3} so Kmax = 3.
#
# items.tsv       item  train_users  features (distinct tokens)
#                   0        4        {1,2}
#                   1        2        {4}
#                   2        1        {2,3}
#                   3        0        {}        (no features; novelty uses max(0,1) = 1)
#                   4        2        {4}
#                   5        1        {1,2}     (written "2 1 1": order and duplicates ignored)
# novelty of an item = -log2(max(train_users,1)/4):  item 0: 0, 1: 1, 2: 2, 3: 2, 4: 1, 5: 2
# cosines: {1,2}.{2,3} = 1/2;  {1,2}.{4} = 0;  {2,3}.{4} = 0;  {1,2}.{1,2} = 1;  {4}.{4} = 1
# discounts 1/log2(r+1): r=1: 1,  r=2: d = 1/log2(3) = 0.6309297535714575,  r=3: 0.5
ITEMS = [(0, 4, "1 2"), (1, 2, "4"), (2, 1, "2 3"), (3, 0, ""), (4, 2, "4"), (5, 1, "2 1 1")]
USERS_TXT = ["u10", "u20", "u30", "u40"]

# test split: users 0, 1, 3 (user 2 has no test items and is not evaluated)
#   user 0: N=6, targets {1: rank 3, 4: rank 5}, top [0, 2, 1]
#   user 1: N=5, targets {2: rank 1, 5: rank 3, 3: rank 4}, top [2, 0, 5]
#   user 3: N=2, targets {4: rank 1, 3: rank 2}, top [4, 3]      (N < Kmax: top has 2 items)
TEST_RANKINGS = [(0, [1, 4], [3, 5], [0, 2, 1], 6),
                 (1, [2, 5, 3], [1, 3, 4], [2, 0, 5], 5),
                 (3, [4, 3], [1, 2], [4, 3], 2)]
D = 0.6309297535714575  # 1/log2(3)
TEST_USERS = {  # per-user values, by hand
    #              user 0              user 1                 user 3
    "hr@2":        [0,                 1,                     1],
    "hr@3":        [1,                 1,                     1],
    "precision@2": [0,                 1 / 2,                 1],      # 2 hits / 2
    "precision@3": [1 / 3,             2 / 3,                 2 / 3],  # k = 3 even though N = 2
    "recall@2":    [0,                 1 / 3,                 1],
    "recall@3":    [1 / 2,             2 / 3,                 1],
    # ndcg@2: u1 = 1/(1+d) = 0.6131471927654584; u3 = (1+d)/(1+d) = 1
    "ndcg@2":      [0,                 0.6131471927654584,    1],
    # ndcg@3: u0 = 0.5/(1+d) = 0.3065735963827292 (idcg over min(2,3)=2);
    #         u1 = (1+0.5)/(1+d+0.5) = 0.7039180890341347; u3 = 1
    "ndcg@3":      [0.3065735963827292, 0.7039180890341347,   1],
    "mrr@2":       [0,                 1,                     1],      # u0: first hit at 3 > 2
    "mrr@3":       [1 / 3,             1,                     1],
    # map@2: u1 = (1/min(3,2)) * (1/1) = 1/2; u3 = (1/2) * (1/1 + 2/2) = 1
    "map@2":       [0,                 1 / 2,                 1],
    # map@3: u0 = (1/2) * (1/3) = 1/6; u1 = (1/3) * (1/1 + 2/3) = 5/9; u3 = (1/2) * (1 + 1) = 1
    "map@3":       [1 / 6,             5 / 9,                 1],
    # auc: u0: N-n = 4; rank 3: 4-(3-1-0) = 2; rank 5: 4-(5-1-1) = 1; 3/(2*4) = 3/8
    #      u1: N-n = 2; rank 1: 2-0 = 2; rank 3: 2-(3-1-1) = 1; rank 4: 2-(4-1-2) = 1; 4/(3*2) = 2/3
    #      u3: N == n_t -> nan
    "auc":         [3 / 8,             2 / 3,                 NAN],
    "gauc":        [3 / 8,             2 / 3,                 NAN],
    # popularity: u0 items 0,2,1 -> (4+1)/2, (4+1+2)/3; u1 items 2,0,5 -> (1+4)/2, (1+4+1)/3;
    #             u3 items 4,3 -> (2+0)/2 at k=2 and k=3 (only 2 items)
    "popularity@2": [5 / 2,            5 / 2,                 1],
    "popularity@3": [7 / 3,            2,                     1],
    # novelty: u0 (0+2)/2, (0+2+1)/3; u1 (2+0)/2, (2+0+2)/3; u3 (1+2)/2
    "novelty@2":   [1,                 1,                     3 / 2],
    "novelty@3":   [1,                 4 / 3,                 3 / 2],
    # diversity@2: u0 pair (0,2): 1-1/2; u1 pair (2,0): 1-1/2; u3: item 3 has no features -> nan
    # diversity@3: u0 pairs (0,2),(0,1),(2,1): (1/2+1+1)/3 = 5/6;
    #              u1 pairs (2,0),(2,5),(0,5): (1/2+1/2+0)/3 = 1/3
    "diversity@2": [1 / 2,             1 / 2,                 NAN],
    "diversity@3": [5 / 6,             1 / 3,                 NAN],
}
TEST_AGG = {  # aggregates, by hand: means over users 0,1,3 of the non-nan values
    "hr@2": 2 / 3, "hr@3": 1.0,
    "precision@2": 1 / 2,                   # (0 + 1/2 + 1)/3
    "precision@3": 5 / 9,                   # (1/3 + 2/3 + 2/3)/3
    "recall@2": 4 / 9,                      # (0 + 1/3 + 1)/3
    "recall@3": 13 / 18,                    # (1/2 + 2/3 + 1)/3
    "ndcg@2": 0.5377157309218195,           # (0 + 0.6131471927654584 + 1)/3
    "ndcg@3": 0.6701638951389546,           # (0.3065735963827292 + 0.7039180890341347 + 1)/3
    "mrr@2": 2 / 3, "mrr@3": 7 / 9,         # (1/3 + 1 + 1)/3
    "map@2": 1 / 2,                         # (0 + 1/2 + 1)/3
    "map@3": 31 / 54,                       # (1/6 + 5/9 + 1)/3 = (31/18)/3
    "auc": 25 / 48,                         # (3/8 + 2/3)/2, user 3 (nan) left out
    "gauc": 0.55,                           # (2*3/8 + 3*2/3)/(2+3) = 2.75/5
    "popularity@2": 2.0,                    # (5/2 + 5/2 + 1)/3
    "popularity@3": 16 / 9,                 # (7/3 + 2 + 1)/3
    "novelty@2": 7 / 6,                     # (1 + 1 + 3/2)/3
    "novelty@3": 23 / 18,                   # (1 + 4/3 + 3/2)/3
    "diversity@2": 1 / 2,                   # (1/2 + 1/2)/2
    "diversity@3": 7 / 12,                  # (5/6 + 1/3)/2
    # coverage@2: first 2 items: {0,2} u {2,0} u {4,3} = {0,2,3,4}: 4/6
    "coverage@2": 2 / 3,
    # coverage@3: {0,2,1} u {2,0,5} u {4,3} = all 6 items
    "coverage@3": 1.0,
    # gini@2: counts over items 0..5 = [2,0,2,1,1,0] -> sorted [0,0,1,1,2,2], n = 6, sum = 6;
    #   coefficients 2i-n-1 = -5,-3,-1,1,3,5: (-1 + 1 + 6 + 10)/(6*6) = 16/36
    "gini@2": 4 / 9,
    # gini@3: counts = [2,1,2,1,1,1] -> sorted [1,1,1,1,2,2], sum 8: (-5-3-1+1+6+10)/(6*8) = 8/48
    "gini@3": 1 / 6,
    "rmse": 0.9,                            # aggregate of predictions: skipped with a note
    "foo@2": 0.25,                          # unknown metric: "not checked"
}

# valid split: user 2 only: N=6, target {0: rank 6}, top [1, 3, 5]
VALID_RANKINGS = [(2, [0], [6], [1, 3, 5], 6)]
VALID_USERS = {
    "hr@2": [0], "hr@3": [0], "precision@2": [0], "precision@3": [0], "recall@2": [0], "recall@3": [0],
    "ndcg@2": [0], "ndcg@3": [0], "mrr@2": [0], "mrr@3": [0], "map@2": [0], "map@3": [0],
    "auc": [0], "gauc": [0],                 # N-n = 5; 5 - (6-1-0) = 0 -> 0/(1*5) = 0
    "popularity@2": [1], "popularity@3": [1],  # items 1,3,5: (2+0)/2, (2+0+1)/3
    "novelty@2": [3 / 2], "novelty@3": [5 / 3],  # (1+2)/2, (1+2+2)/3
    "diversity@2": [NAN],                    # items 1,3: only item 1 has features
    "diversity@3": [1.0],                    # featured 1 {4}, 5 {1,2}: 1 - 0
}
VALID_AGG = {k: (None if v[0] != v[0] else float(v[0])) for k, v in VALID_USERS.items()}  # nan -> null
VALID_AGG.update({
    "coverage@2": 1 / 3,                     # {1,3}: 2/6
    "coverage@3": 1 / 2,                     # {1,3,5}: 3/6
    "gini@2": 2 / 3,                         # sorted [0,0,0,0,1,1], sum 2: (3+5)/(6*2)
    "gini@3": 1 / 2,                         # sorted [0,0,0,1,1,1], sum 3: (1+3+5)/(6*3)
})


# ------------------------------------------------------------------------------------------------
# A second, literal implementation (plain Python loops, straight from the definitions) used to
# fill a larger random run: it cross-checks check_metrics.py's vectorised numpy code on shapes
# the hand-computed run does not reach (many targets, N_u < Kmax, N_u == n_t, empty features).


def literal_metrics(rankings, items, n_users, ks, n_items):
    train = {i: n for i, n, _ in items}
    feats = {i: set(f.split()) for i, _, f in items}
    per_user = {f"{m}@{k}": [] for m in ("hr", "precision", "recall", "ndcg", "mrr", "map",
                                         "popularity", "novelty", "diversity") for k in ks}
    per_user["auc"], per_user["gauc"] = [], []
    for _, targets, ranks, top, N in rankings:
        n = len(targets)
        for k in ks:
            hit = [r for r in ranks if r <= k]
            per_user[f"hr@{k}"].append(1.0 if hit else 0.0)
            per_user[f"precision@{k}"].append(len(hit) / k)
            per_user[f"recall@{k}"].append(len(hit) / n)
            idcg = sum(1 / math.log2(j + 1) for j in range(1, min(n, k) + 1))
            per_user[f"ndcg@{k}"].append(sum(1 / math.log2(r + 1) for r in hit) / idcg)
            per_user[f"mrr@{k}"].append(1 / min(ranks) if min(ranks) <= k else 0.0)
            per_user[f"map@{k}"].append(sum(sum(1 for q in ranks if q <= r) / r for r in hit) / min(n, k))
            first = top[:k]
            per_user[f"popularity@{k}"].append(sum(train[i] for i in first) / len(first))
            per_user[f"novelty@{k}"].append(sum(-math.log2(max(train[i], 1) / n_users) for i in first) / len(first))
            fi = [i for i in first if feats[i]]
            pairs = [(a, b) for x, a in enumerate(fi) for b in fi[x + 1:]]
            per_user[f"diversity@{k}"].append(
                sum(1 - len(feats[a] & feats[b]) / math.sqrt(len(feats[a]) * len(feats[b])) for a, b in pairs)
                / len(pairs) if pairs else NAN)
        if N == n:
            auc = NAN
        else:
            auc = sum((N - n) - (r - 1 - sum(1 for q in ranks if q < r)) for r in ranks) / (n * (N - n))
        per_user["auc"].append(auc)
        per_user["gauc"].append(auc)
    agg = {}
    for name, v in per_user.items():
        ok = [(x, len(rk[1])) for x, rk in zip(v, rankings) if x == x]
        if name == "gauc":
            agg[name] = sum(x * w for x, w in ok) / sum(w for _, w in ok) if ok else None
        else:
            agg[name] = sum(x for x, _ in ok) / len(ok) if ok else None
    for k in ks:
        c = [sum(1 for rk in rankings if i in rk[3][:k]) for i in range(n_items)]
        agg[f"coverage@{k}"] = sum(1 for x in c if x) / n_items
        c.sort()
        agg[f"gini@{k}"] = (sum((2 * i - n_items - 1) * x for i, x in enumerate(c, start=1)) / (n_items * sum(c))
                            if sum(c) else 0.0)
    return per_user, agg


def random_run(seed, n_eval, n_users, n_items, ks):
    """-> (items, rankings): random but consistent rankings (distinct ranks, top = first Kmax)."""
    rng = random.Random(seed)
    items = []
    for i in range(n_items):
        toks = [str(rng.randrange(12)) for _ in range(rng.choice((0, 0, 1, 2, 3, 4)))]  # dups allowed
        items.append((i, rng.choice((0, 0, 1, 2, 3, 7, 20, 100)), " ".join(toks)))
    kmax = max(ks)
    rankings = []
    for u in sorted(rng.sample(range(n_users), n_eval)):
        N = rng.choice((1, 2, 3, kmax - 1, kmax, kmax + 1, rng.randrange(1, n_items + 1)))
        order = rng.sample(range(n_items), N)               # candidates in ranked order
        n = N if rng.random() < 0.05 else rng.randrange(1, min(N, 40) + 1)
        ranks = rng.sample(range(1, N + 1), n)
        rankings.append((u, [order[r - 1] for r in ranks], ranks, order[:min(kmax, N)], N))
    return items, rankings


def fnum(x):
    return "nan" if x != x else repr(float(x))


def write_run(d, test_users=TEST_USERS, test_agg=TEST_AGG, test_rankings=TEST_RANKINGS, with_valid=True,
              users_txt=USERS_TXT, items=ITEMS):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "users.txt"), "w") as f:
        f.write("".join(u + "\n" for u in users_txt))
    with open(os.path.join(d, "items.tsv"), "w") as f:
        f.write("item\ttrain_users\tfeatures\n")
        f.write("".join(f"{i}\t{n}\t{feat}\n" for i, n, feat in items))
    obj = {}
    splits = [("test", test_rankings, test_users, test_agg)]
    if with_valid:
        splits.append(("valid", VALID_RANKINGS, VALID_USERS, VALID_AGG))
    for split, rankings, per_user, agg in splits:
        obj[split] = {"protocol": "full ranking (selftest)", "n_users": len(rankings),
                      "metrics": dict(agg)}
        with open(os.path.join(d, f"{split}.rankings.tsv"), "w") as f:
            f.write("user\ttargets\tranks\ttop\tn_candidates\n")
            for u, t, r, top, n in rankings:
                f.write(f"{u}\t{' '.join(map(str, t))}\t{' '.join(map(str, r))}\t{' '.join(map(str, top))}\t{n}\n")
        cols = list(per_user)
        with open(os.path.join(d, f"{split}.users.csv"), "w") as f:
            f.write("user,n_targets,n_candidates," + ",".join(cols) + "\n")
            for row, (u, t, _, _, n) in enumerate(rankings):
                f.write(f"{u},{len(t)},{n}," + ",".join(fnum(per_user[c][row]) for c in cols) + "\n")
    with open(os.path.join(d, "metrics.json"), "w") as f:
        json.dump(obj, f, indent=2)


def run(*args):
    p = subprocess.run([sys.executable, CHECK, *args], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


failures = []


def expect(title, args, rc_want, must_contain=()):
    rc, out = run(*args)
    ok = rc == rc_want and all(s in out for s in must_contain)
    print(f"--- {title}: exit {rc} (want {rc_want}) {'PASS' if ok else 'FAIL'}")
    print("    " + out.rstrip().replace("\n", "\n    "))
    if not ok:
        failures.append(title)


def changed(table, metric, row, value):
    t = {k: list(v) for k, v in table.items()}
    t[metric][row] = value
    return t


def main():
    try:
        import numpy  # noqa: F401
    except ImportError:
        print("selftest_check_metrics: numpy is missing (apt-get install python3-numpy); skipped")
        return 77
    tmp = tempfile.mkdtemp(prefix="rzoo_check_metrics_")
    try:
        good = os.path.join(tmp, "good")
        write_run(good)
        expect("hand-computed run agrees", [good], 0,
               ["test: 3 users, 24 metrics checked", ": ok", "valid: 1 users, 24 metrics checked",
                "skipped: rmse", "not checked: foo@2"])
        expect("--split test only", [good, "--split", "test"], 0, ["test: 3 users"])

        d = os.path.join(tmp, "peruser")  # user 1's ndcg@3 is 0.7039..., write 0.75
        write_run(d, test_users=changed(TEST_USERS, "ndcg@3", 1, 0.75))
        expect("corrupted per-user ndcg@3 is detected", [d], 1, ["ndcg@3", "0.75", "0.703918089"])

        d = os.path.join(tmp, "nan")  # user 3's auc is nan (N == n_t), write 0.5
        write_run(d, test_users=changed(TEST_USERS, "auc", 2, 0.5))
        expect("number where nan is due is detected", [d], 1, ["auc", "0.5", "nan"])

        d = os.path.join(tmp, "agg")  # gini@2 is 4/9, write 0.5
        write_run(d, test_agg=dict(TEST_AGG, **{"gini@2": 0.5}))
        expect("corrupted aggregate gini@2 is detected", [d], 1, ["gini@2", "(aggregate)"])

        d = os.path.join(tmp, "gauc")  # the unweighted mean 25/48 written for gauc
        write_run(d, test_agg=dict(TEST_AGG, gauc=25 / 48))
        expect("unweighted gauc aggregate is detected", [d], 1, ["gauc"])

        d = os.path.join(tmp, "small")  # 5e-7 off: within the default 1e-6, not within 1e-7
        write_run(d, test_agg=dict(TEST_AGG, **{"recall@3": 13 / 18 + 5e-7}))
        expect("difference within --tol passes", [d], 0, [": ok"])
        expect("difference beyond --tol 1e-7 fails", [d, "--tol", "1e-7"], 1, ["recall@3"])

        d = os.path.join(tmp, "consistency")  # user 1's top list reordered: target 2 (rank 1) at position 2
        bad = [r if r[0] != 1 else (1, [2, 5, 3], [1, 3, 4], [0, 2, 5], 5) for r in TEST_RANKINGS]
        write_run(d, test_rankings=bad)
        expect("top list contradicting the ranks is detected", [d], 1, ["consistency", "target 2 has rank 1"])

        d = os.path.join(tmp, "novalid")
        write_run(d, with_valid=False)
        expect("absent valid split is skipped with a note", [d], 0, ["valid: not in metrics.json; skipped"])
        expect("--split valid when absent is a usage error", [d, "--split", "valid"], 2, ["'valid'"])

        d = os.path.join(tmp, "missing")
        write_run(d)
        os.remove(os.path.join(d, "items.tsv"))
        expect("missing items.tsv is named", [d], 2, ["missing file", "items.tsv"])
        write_run(d)
        os.remove(os.path.join(d, "valid.rankings.tsv"))
        expect("missing valid.rankings.tsv is named", [d], 2, ["valid.rankings.tsv"])

        d = os.path.join(tmp, "random")  # 300 random users vs the literal loop implementation
        ks, n_users, n_items = (1, 5, 10, 20), 400, 200
        items, rankings = random_run(12345, 300, n_users, n_items, ks)
        per_user, agg = literal_metrics(rankings, items, n_users, ks, n_items)
        write_run(d, test_users=per_user, test_agg=agg, test_rankings=rankings, with_valid=False,
                  users_txt=[f"r{i}" for i in range(n_users)], items=items)
        expect("random run agrees with a literal loop implementation", [d], 0,
               ["test: 300 users, 46 metrics checked", ": ok"])

        expect("bad --split is a usage error", [good, "--split", "train"], 2, ["invalid choice"])
        expect("no RUN_DIR is a usage error", [], 2, ["RUN_DIR"])
    finally:
        shutil.rmtree(tmp)
    if failures:
        print(f"selftest_check_metrics: FAILED: {', '.join(failures)}")
        return 1
    print("selftest_check_metrics: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
