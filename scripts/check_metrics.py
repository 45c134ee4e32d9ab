#!/usr/bin/python3
"""Recompute rzoo's evaluation metrics from a finished run folder and compare.

An independent implementation (Python 3 + numpy only) of the metrics rzoo's evaluator writes.
It reads the saved rankings of each split and recomputes every per-user value and every
aggregate it can, then compares them with what rzoo wrote.

Usage: check_metrics.py RUN_DIR [--split test|valid|both] [--tol 1e-6] [--rtol 0]

Files read (S in {valid, test}):
  RUN/metrics.json      obj[S]["metrics"]: "name@k" -> aggregate (number or null)
  RUN/S.users.csv       user,n_targets,n_candidates,<per-user metric columns...>
  RUN/S.rankings.tsv    user  targets  ranks  top  n_candidates   (tab-separated, header line)
  RUN/items.tsv         item  train_users  features               (tab-separated, header line)
  RUN/users.txt         one raw user id per line (n_users = number of lines)

Exit status: 0 all agree; 1 disagreements (listed); 2 bad usage, missing or malformed file;
77 numpy is not importable (the check is skipped).

Metric definitions (user u: targets T_u, n_t = |T_u|, N_u candidates, ranks r_t (1-based),
top list L_u):
  hits_k = #{t : r_t <= k}
  hr@k = [hits_k > 0]            precision@k = hits_k / k           recall@k = hits_k / n_t
  ndcg@k = sum_{r_t<=k} 1/log2(r_t+1) / sum_{j=1..min(n_t,k)} 1/log2(j+1)
  mrr@k = 1/min r_t if min r_t <= k else 0
  map@k = (1/min(n_t,k)) sum_{r_t<=k} #{t' : r_t' <= r_t} / r_t
  auc = (1/(n_t (N_u-n_t))) sum_t [(N_u-n_t) - (r_t - 1 - #{t' : r_t' < r_t})]; NaN if N_u == n_t
  gauc: per-user value = auc; aggregate weighted by n_t
  popularity@k, novelty@k: mean of train_users[i], of -log2(max(train_users[i],1)/n_users),
      over the first min(k, |L_u|) items of L_u
  diversity@k: mean of 1 - cos(v_i, v_j) over unordered pairs of the first min(k, |L_u|) items
      having at least one feature token (v = 0/1 vector of distinct tokens); NaN if < 2 such items
  coverage@k, gini@k (aggregate only): over the first min(k, |L_u|) items of every L_u
  rmse, mae (aggregate only): need predictions, not in the rankings: skipped.
Aggregates of per-user metrics: mean over users whose value is not NaN (gauc: weighted by n_t).
"""
import argparse
import csv
import json
import math
import os
import sys

np = None  # numpy, imported in main() so that a missing numpy gives exit 77, not a traceback

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_SKIP = 0, 1, 2, 77

RANK_METRICS = ("hr", "precision", "recall", "ndcg", "mrr", "map")  # per user, @k, from ranks
LIST_METRICS = ("popularity", "novelty", "diversity")               # per user, @k, from top list
AUC_METRICS = ("auc", "gauc")                                       # per user, no @k
AGG_LIST_METRICS = ("coverage", "gini")                             # aggregate only, @k
UNCHECKABLE = ("rmse", "mae")                                       # aggregate only, no rankings
SPLITS = ("valid", "test")


class InputError(Exception):
    """A missing or malformed input file: exit 2."""


def classify(name):
    """-> (kind, base, k). kind: 'user' (per-user metric), 'agg' (aggregate only, recomputable),
    'skip' (aggregate only, not recomputable), 'unknown'."""
    base, sep, ks = name.partition("@")
    if sep:
        if not ks.isdigit() or int(ks) < 1:
            return "unknown", base, None
        k = int(ks)
        if base in RANK_METRICS or base in LIST_METRICS:
            return "user", base, k
        if base in AGG_LIST_METRICS:
            return "agg", base, k
        return "unknown", base, k
    if base in AUC_METRICS:
        return "user", base, None
    if base in UNCHECKABLE:
        return "skip", base, None
    return "unknown", base, None


# ---------------------------------------------------------------------------------------------
# Reading


def need(path):
    if not os.path.isfile(path):
        raise InputError(f"missing file: {path}")
    return path


def read_lines(path):
    with open(need(path), encoding="utf-8", newline="") as f:
        text = f.read()
    return text.splitlines()


def parse_int(tok, path, lineno, what):
    try:
        return int(tok)
    except ValueError:
        raise InputError(f"{path}:{lineno}: {what} is not an integer: {tok!r}") from None


def parse_ints(field, path, lineno, what):
    toks = field.split()
    try:
        return np.array([int(t) for t in toks], dtype=np.int64)
    except ValueError:
        raise InputError(f"{path}:{lineno}: {what} has a non-integer token: {field!r}") from None


def read_users_txt(run):
    return len(read_lines(os.path.join(run, "users.txt")))


def read_items(run):
    """-> (train_users int64 [n_items], features: list of sorted distinct token arrays)."""
    path = os.path.join(run, "items.tsv")
    lines = read_lines(path)
    if not lines:
        raise InputError(f"{path}: empty file (expected a header line)")
    header = lines[0].split("\t")
    if header != ["item", "train_users", "features"]:
        raise InputError(f"{path}:1: header must be item<TAB>train_users<TAB>features, got {lines[0]!r}")
    rows = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        f = line.split("\t")
        if len(f) == 2:  # empty feature field with the trailing tab stripped
            f.append("")
        if len(f) != 3:
            raise InputError(f"{path}:{lineno}: expected 3 tab-separated fields, got {len(f)}")
        item = parse_int(f[0], path, lineno, "item")
        if item in rows:
            raise InputError(f"{path}:{lineno}: item {item} listed twice")
        tu = parse_int(f[1], path, lineno, "train_users")
        if tu < 0:
            raise InputError(f"{path}:{lineno}: train_users is negative: {tu}")
        rows[item] = (tu, np.unique(parse_ints(f[2], path, lineno, "features")))
    n = len(rows)
    if n == 0:
        raise InputError(f"{path}: lists no items")
    if sorted(rows) != list(range(n)):
        missing = sorted(set(range(max(rows, default=-1) + 1)) - set(rows))[:5]
        raise InputError(f"{path}: items must be exactly 0..n_items-1; missing e.g. {missing}")
    train_users = np.array([rows[i][0] for i in range(n)], dtype=np.int64)
    features = [rows[i][1] for i in range(n)]
    return train_users, features


def read_rankings(path):
    """-> list of (user, targets, ranks, top, n_candidates, lineno), in file order."""
    lines = read_lines(path)
    if not lines:
        raise InputError(f"{path}: empty file (expected a header line)")
    header = lines[0].split("\t")
    if header != ["user", "targets", "ranks", "top", "n_candidates"]:
        raise InputError(f"{path}:1: header must be user<TAB>targets<TAB>ranks<TAB>top<TAB>n_candidates, "
                         f"got {lines[0]!r}")
    out = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        f = line.split("\t")
        if len(f) != 5:
            raise InputError(f"{path}:{lineno}: expected 5 tab-separated fields, got {len(f)}")
        user = parse_int(f[0], path, lineno, "user")
        targets = parse_ints(f[1], path, lineno, "targets")
        ranks = parse_ints(f[2], path, lineno, "ranks")
        top = parse_ints(f[3], path, lineno, "top")
        n_cand = parse_int(f[4], path, lineno, "n_candidates")
        if len(targets) != len(ranks):
            raise InputError(f"{path}:{lineno}: {len(targets)} targets but {len(ranks)} ranks")
        out.append((user, targets, ranks, top, n_cand, lineno))
    return out


def read_users_csv(path):
    """-> (columns: list of metric names, users, n_targets, n_candidates, {name: float array})."""
    with open(need(path), encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.reader(fh) if r]
    if not rows:
        raise InputError(f"{path}: empty file (expected a header line)")
    header = [h.strip() for h in rows[0]]
    if header[:3] != ["user", "n_targets", "n_candidates"]:
        raise InputError(f"{path}:1: header must start with user,n_targets,n_candidates, got {','.join(header)!r}")
    cols = header[3:]
    if len(set(header)) != len(header):
        raise InputError(f"{path}:1: duplicate column names")
    users, nt, nc, vals = [], [], [], [[] for _ in cols]
    for lineno, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise InputError(f"{path}:{lineno}: expected {len(header)} fields, got {len(r)}")
        users.append(parse_int(r[0].strip(), path, lineno, "user"))
        nt.append(parse_int(r[1].strip(), path, lineno, "n_targets"))
        nc.append(parse_int(r[2].strip(), path, lineno, "n_candidates"))
        for j, tok in enumerate(r[3:]):
            try:
                vals[j].append(float(tok.strip()))  # accepts nan, -nan, NaN, inf
            except ValueError:
                raise InputError(f"{path}:{lineno}: column {cols[j]} is not a number: {tok!r}") from None
    return (cols, np.array(users, dtype=np.int64), np.array(nt, dtype=np.int64), np.array(nc, dtype=np.int64),
            {c: np.array(v, dtype=np.float64) for c, v in zip(cols, vals)})


def read_metrics_json(run):
    path = os.path.join(run, "metrics.json")
    with open(need(path), encoding="utf-8") as f:
        try:
            obj = json.load(f)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: top level is not a JSON object")
    return obj, path


# ---------------------------------------------------------------------------------------------
# Recomputation


class Rankings:
    """The evaluated users of one split, sorted by user index, in flat (ragged) arrays."""

    def __init__(self, recs):
        recs = sorted(recs, key=lambda r: r[0])
        self.users = np.array([r[0] for r in recs], dtype=np.int64)
        self.targets = [r[1] for r in recs]
        self.ranks = [r[2] for r in recs]
        self.tops = [r[3] for r in recs]
        self.n_cand = np.array([r[4] for r in recs], dtype=np.int64)
        self.n_t = np.array([len(r[1]) for r in recs], dtype=np.int64)
        self.top_len = np.array([len(r[3]) for r in recs], dtype=np.int64)
        U = len(recs)
        self.U = U
        # Flat target arrays, sorted by (user row, rank).
        row = np.repeat(np.arange(U, dtype=np.int64), self.n_t)
        r = np.concatenate(self.ranks) if U else np.zeros(0, dtype=np.int64)
        order = np.lexsort((r, row))
        self.row, self.r = row[order], r[order].astype(np.float64)
        # Per target: #{targets of the same user with rank <= r} and #{... with rank < r}
        # (literal definitions, correct even if ranks were tied).
        shifted = self.r - (self.r.min() if len(self.r) else 0.0)  # >= 0 even if a rank is bad (<= 0)
        big = (shifted.max() if len(self.r) else 0.0) + 2.0
        key = self.row * big + shifted                              # sorted: by row, then rank
        offsets = np.concatenate(([0], np.cumsum(self.n_t)[:-1])) if U else np.zeros(0, dtype=np.int64)
        self.count_le = (np.searchsorted(key, key, side="right") - offsets[self.row]).astype(np.float64)
        self.count_lt = (np.searchsorted(key, key, side="left") - offsets[self.row]).astype(np.float64)
        # Padded top lists.
        lmax = int(self.top_len.max()) if U else 0
        self.top = np.full((U, lmax), -1, dtype=np.int64)
        for i, t in enumerate(self.tops):
            self.top[i, :len(t)] = t

    def _sum(self, w):
        return np.bincount(self.row, weights=w, minlength=self.U).astype(np.float64)

    def rank_metric(self, base, k):
        r, n_t = self.r, self.n_t.astype(np.float64)
        m = r <= k
        with np.errstate(all="ignore"):
            hits = self._sum(m.astype(np.float64))
            if base == "hr":
                return (hits > 0).astype(np.float64)
            if base == "precision":
                return hits / k
            if base == "recall":
                return hits / n_t
            if base == "ndcg":
                dcg = self._sum(np.where(m, 1.0 / np.log2(r + 1.0), 0.0))
                jmax = int(min(k, self.n_t.max() if self.U else 0))
                disc = 1.0 / np.log2(np.arange(2, jmax + 2, dtype=np.float64))
                cum = np.concatenate(([0.0], np.cumsum(disc)))
                idcg = cum[np.minimum(self.n_t, k)]
                return dcg / idcg
            if base == "mrr":
                minr = np.full(self.U, np.inf)
                np.minimum.at(minr, self.row, r)
                return np.where(minr <= k, 1.0 / minr, 0.0)
            if base == "map":
                s = self._sum(np.where(m, self.count_le / r, 0.0))
                return s / np.minimum(n_t, k)
        raise AssertionError(base)

    def auc(self):
        n = self.n_t.astype(np.float64)
        N = self.n_cand.astype(np.float64)
        neg = N - n
        term = neg[self.row] - (self.r - 1.0 - self.count_lt)
        with np.errstate(all="ignore"):
            out = self._sum(term) / (n * neg)
        out[~(neg > 0)] = np.nan
        return out

    def prefix_mask(self, k):
        """[U, Lmax] bool: the first min(k, |L_u|) positions of each top list."""
        m = np.minimum(self.top_len, k)
        return np.arange(self.top.shape[1])[None, :] < m[:, None], m

    def list_mean(self, per_item, k):
        mask, m = self.prefix_mask(k)
        idx = np.clip(self.top, 0, len(per_item) - 1)
        with np.errstate(all="ignore"):
            return np.where(mask, per_item[idx], 0.0).sum(axis=1) / m

    def diversity(self, features, ks):
        """-> {k: [U] array}. Pairwise 1 - cosine over the featured items of each prefix."""
        out = {k: np.full(self.U, np.nan) for k in ks}
        n_items = len(features)
        for u, top in enumerate(self.tops):
            pos, toks = [], []
            for p, i in enumerate(top):
                if 0 <= i < n_items and len(features[i]) > 0:
                    pos.append(p)
                    toks.append(features[i])
            if len(pos) < 2:
                continue
            lens = np.array([len(t) for t in toks])
            _, inv = np.unique(np.concatenate(toks), return_inverse=True)
            V = np.zeros((len(toks), inv.max() + 1))
            V[np.repeat(np.arange(len(toks)), lens), inv] = 1.0  # tokens are distinct per item
            G = V @ V.T
            norm = np.sqrt(np.diag(G))
            D = 1.0 - G / np.outer(norm, norm)
            # cum[f] = sum of D[i, j] over i < j < f: the pairs among the first f featured items.
            cum = np.concatenate(([0.0], np.cumsum(np.triu(D, 1).sum(axis=0))))
            pos = np.array(pos)
            for k in ks:
                f = int(np.count_nonzero(pos < min(k, len(top))))
                if f >= 2:
                    out[k][u] = cum[f] / (f * (f - 1) / 2.0)
        return out

    def coverage_gini(self, k, n_items):
        mask, _ = self.prefix_mask(k)
        x = np.sort(np.where(mask, self.top, -1), axis=1)
        first = np.ones_like(x, dtype=bool)
        first[:, 1:] = x[:, 1:] != x[:, :-1]  # count an item once per user ("lists that contain i")
        x = x[(x >= 0) & (x < n_items) & first]
        c = np.bincount(x, minlength=n_items).astype(np.float64)
        coverage = np.count_nonzero(c) / n_items
        total = c.sum()
        if total == 0:
            return coverage, 0.0
        c.sort()
        i = np.arange(1, n_items + 1, dtype=np.float64)
        gini = float(np.sum((2.0 * i - n_items - 1.0) * c) / (n_items * total))
        return coverage, gini


def consistency(rk, n_users, n_items, kmax):
    """-> list of (user, message)."""
    bad = []
    seen = set()
    for u, targets, ranks, top, N in zip(rk.users.tolist(), rk.targets, rk.ranks, rk.tops, rk.n_cand.tolist()):
        if u in seen:
            bad.append((u, "user listed twice in rankings.tsv"))
            continue
        seen.add(u)
        if not 0 <= u < n_users:
            bad.append((u, f"user index outside 0..{n_users - 1} (users.txt)"))
        nt = len(targets)
        if nt == 0:
            bad.append((u, "no target items"))
        t_list, r_list, top_list = targets.tolist(), ranks.tolist(), top.tolist()
        if len(set(t_list)) != nt:
            bad.append((u, "duplicate target items"))
        if any(not 0 <= t < n_items for t in t_list):
            bad.append((u, f"target item outside 0..{n_items - 1}"))
        if len(set(r_list)) != nt:
            bad.append((u, "ranks are not distinct"))
        if any(not 1 <= r <= N for r in r_list):
            bad.append((u, f"rank outside 1..n_candidates={N}"))
        if len(set(top_list)) != len(top_list):
            bad.append((u, "duplicate items in the top list"))
        if any(not 0 <= i < n_items for i in top_list):
            bad.append((u, f"top-list item outside 0..{n_items - 1}"))
        if kmax is not None and len(top_list) != min(kmax, N):
            bad.append((u, f"top list has {len(top_list)} items, expected min(Kmax={kmax}, n_candidates={N})"
                           f" = {min(kmax, N)}"))
        rank_of = dict(zip(t_list, r_list))
        for t, r in rank_of.items():
            if 1 <= r <= len(top_list) and top_list[r - 1] != t:
                bad.append((u, f"target {t} has rank {r} but top[{r}] is item {top_list[r - 1]}"))
        for p, i in enumerate(top_list):
            if i in rank_of and rank_of[i] != p + 1:
                bad.append((u, f"target {i} is at top position {p + 1} but its rank is {rank_of[i]}"))
    return bad


# ---------------------------------------------------------------------------------------------
# Comparison


def agree(a, b, tol, rtol):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tol + rtol * abs(b)


def fmt(x):
    return "nan" if isinstance(x, float) and math.isnan(x) else (f"{x:.10g}" if isinstance(x, float) else str(x))


def short(x):
    """3.1e-08 -> 3.1e-8"""
    m, e, x = f"{x:.2g}".partition("e")
    return m + e + (x[0].replace("+", "") + x[1:].lstrip("0") if e else "")


def aggregate(base, values, n_t):
    ok = ~np.isnan(values)
    if not ok.any():
        return float("nan")
    if base == "gauc":
        w = n_t[ok].astype(np.float64)
        return float(np.sum(values[ok] * w) / np.sum(w)) if w.sum() > 0 else float("nan")
    return float(np.mean(values[ok]))


def check_split(run, split, split_obj, json_path, n_users, train_users, features, tol, rtol):
    """-> (summary line, notes, problems). problems: (metric, user, rzoo, numpy) tuples."""
    if not isinstance(split_obj, dict) or not isinstance(split_obj.get("metrics"), dict):
        raise InputError(f"{json_path}: {split}.metrics is missing or not an object")
    agg = split_obj["metrics"]
    rk_path = os.path.join(run, f"{split}.rankings.tsv")
    csv_path = os.path.join(run, f"{split}.users.csv")
    rk = Rankings(read_rankings(rk_path))
    cols, c_users, c_nt, c_nc, c_vals = read_users_csv(csv_path)
    n_items = len(train_users)

    problems, notes = [], []
    names = list(agg) + [c for c in cols if c not in agg]
    kinds = {n: classify(n) for n in names}
    ks_all = [k for (_, _, k) in kinds.values() if k is not None]
    kmax = max(ks_all) if ks_all else None

    # --- consistency of the rankings, and of users.csv with them
    for u, msg in consistency(rk, n_users, n_items, kmax):
        problems.append(("consistency", u, msg, ""))
    if len(c_users) > 1 and np.any(np.diff(c_users) <= 0):
        problems.append(("consistency", "-", f"{split}.users.csv users are not strictly ascending", ""))
    rk_set, csv_set = set(rk.users.tolist()), set(c_users.tolist())
    for u in sorted(rk_set - csv_set):
        problems.append(("consistency", u, f"in {split}.rankings.tsv but not in {split}.users.csv", ""))
    for u in sorted(csv_set - rk_set):
        problems.append(("consistency", u, f"in {split}.users.csv but not in {split}.rankings.tsv", ""))
    # row of each csv user in rk (users in both)
    common = np.array(sorted(rk_set & csv_set), dtype=np.int64)
    rk_row = np.searchsorted(rk.users, common)
    c_first = {}
    for i, u in enumerate(c_users.tolist()):
        c_first.setdefault(u, i)
    c_row = np.array([c_first[u] for u in common.tolist()], dtype=np.int64)
    for name, a, b in (("n_targets", c_nt, rk.n_t), ("n_candidates", c_nc, rk.n_cand)):
        diff = np.nonzero(a[c_row] != b[rk_row])[0]
        for i in diff:
            problems.append((name, int(common[i]), int(a[c_row[i]]), int(b[rk_row[i]])))

    # --- recompute per-user values
    novelty_item = -np.log2(np.maximum(train_users, 1).astype(np.float64) / n_users) if n_users > 0 else None
    div_ks = sorted({k for (kind, base, k) in kinds.values() if kind == "user" and base == "diversity"})
    div = rk.diversity(features, div_ks) if div_ks else {}
    auc = None
    mine = {}
    for name, (kind, base, k) in kinds.items():
        if kind != "user":
            continue
        if base in RANK_METRICS:
            mine[name] = rk.rank_metric(base, k)
        elif base in AUC_METRICS:
            auc = rk.auc() if auc is None else auc
            mine[name] = auc
        elif base == "popularity":
            mine[name] = rk.list_mean(train_users.astype(np.float64), k)
        elif base == "novelty":
            if novelty_item is None:
                raise InputError(f"{os.path.join(run, 'users.txt')}: empty, n_users = 0 (needed by {name})")
            mine[name] = rk.list_mean(novelty_item, k)
        elif base == "diversity":
            mine[name] = div[k]

    checked, max_diff = set(), 0.0

    def compare(metric, user, a, b):
        nonlocal max_diff
        if not (math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b)):
            max_diff = max(max_diff, abs(a - b))
        if not agree(a, b, tol, rtol):
            problems.append((metric, user, a, b))

    # --- (1) per-user columns
    for c in cols:
        kind, base, k = kinds[c]
        if kind == "user":
            checked.add(c)
            a, b = c_vals[c][c_row], mine[c][rk_row]
            both_nan = np.isnan(a) & np.isnan(b)
            with np.errstate(all="ignore"):
                ok = both_nan | (np.abs(a - b) <= tol + rtol * np.abs(b)) | ((a == b) & np.isinf(a))
            finite = np.isfinite(a) & np.isfinite(b)
            if finite.any():
                max_diff = max(max_diff, float(np.max(np.abs(a[finite] - b[finite]))))
            for i in np.nonzero(~ok)[0]:
                problems.append((c, int(common[i]), float(a[i]), float(b[i])))
        elif kind == "unknown":
            if c not in agg:
                notes.append(f"not checked: {c} (unknown metric; per-user column only)")
        else:
            notes.append(f"not checked: {c} (aggregate-only metric found as a per-user column)")
    for name, (kind, base, k) in kinds.items():
        if kind == "user" and name in agg and name not in cols:
            problems.append((name, "-", f"missing column in {split}.users.csv", ""))
        if kind == "user" and name not in agg:
            problems.append((name, "(aggregate)", f"column in {split}.users.csv but not in metrics.json", ""))

    # --- (2) aggregates
    cov_gini = {}
    for name, value in agg.items():
        kind, base, k = kinds[name]
        if kind == "unknown":
            notes.append(f"not checked: {name} (unknown metric)")
            continue
        if kind == "skip":
            notes.append(f"skipped: {name} (computed from predicted values, not recomputable from rankings)")
            continue
        if value is None:
            a = float("nan")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            a = float(value)
        else:
            problems.append((name, "(aggregate)", f"not a number: {value!r}", ""))
            continue
        if kind == "user":
            b = aggregate(base, mine[name], rk.n_t)
        else:
            if k not in cov_gini:
                cov_gini[k] = rk.coverage_gini(k, n_items)
            b = cov_gini[k][0] if base == "coverage" else cov_gini[k][1]
        checked.add(name)
        compare(name, "(aggregate)", a, b)

    verdict = "ok" if not problems else f"{len(problems)} disagreement{'s' if len(problems) != 1 else ''}"
    line = f"{split}: {rk.U} users, {len(checked)} metrics checked, max abs diff {short(max_diff)}: {verdict}"
    return line, notes, problems


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="check_metrics.py",
        description="Recompute rzoo's evaluation metrics from a run folder's saved rankings (numpy) and "
                    "compare with metrics.json and SPLIT.users.csv.",
        epilog="Exit status: 0 all agree, 1 disagreements, 2 bad usage or missing/malformed file, "
               "77 numpy missing (skipped).")
    ap.add_argument("run_dir", metavar="RUN_DIR", help="finished rzoo run folder")
    ap.add_argument("--split", choices=("test", "valid", "both"), default="both",
                    help="split(s) to check (default: both; with 'both', a split absent from metrics.json "
                         "is skipped with a note)")
    ap.add_argument("--tol", type=float, default=1e-6, help="absolute tolerance (default 1e-6)")
    ap.add_argument("--rtol", type=float, default=0.0,
                    help="relative tolerance added to --tol: |a-b| <= tol + rtol*|numpy| (default 0)")
    ap.add_argument("--max-list", type=int, default=200, help="most disagreements printed (default 200; all counted)")
    args = ap.parse_args(argv)
    if not (args.tol >= 0 and args.rtol >= 0):
        ap.error("--tol and --rtol must be >= 0")

    global np
    try:
        import numpy
    except ImportError:
        print("check_metrics: numpy is missing (apt-get install python3-numpy); skipped")
        return EXIT_SKIP
    np = numpy

    run = args.run_dir
    try:
        if not os.path.isdir(run):
            raise InputError(f"not a directory: {run}")
        obj, json_path = read_metrics_json(run)
        if args.split == "both":
            splits = [s for s in SPLITS if s in obj]
            absent = [s for s in SPLITS if s not in obj]
            if not splits:
                raise InputError(f"{json_path}: neither 'valid' nor 'test' is present")
        else:
            if args.split not in obj:
                raise InputError(f"{json_path}: no '{args.split}' entry")
            splits, absent = [args.split], []
        n_users = read_users_txt(run)
        train_users, features = read_items(run)
        results = [check_split(run, s, obj[s], json_path, n_users, train_users, features, args.tol, args.rtol)
                   for s in splits]
    except InputError as e:
        print(f"check_metrics: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        print(f"check_metrics: cannot read {e.filename}: {e.strerror}", file=sys.stderr)
        return EXIT_USAGE

    total = 0
    for s, (line, notes, problems) in zip(splits, results):
        print(line)
        for n in notes:
            print(f"  {n}")
        total += len(problems)
    for s in absent:
        print(f"{s}: not in metrics.json; skipped")
    if total:
        print(f"\ndisagreements ({total}; tolerance {args.tol:g} absolute" +
              (f" + {args.rtol:g} relative" if args.rtol else "") + "):")
        print(f"  {'split':<6} {'metric':<16} {'user':>12}  {'rzoo':<24} numpy")
        shown = 0
        for s, (_, _, problems) in zip(splits, results):
            for metric, user, a, b in problems:
                if shown >= args.max_list:
                    break
                if isinstance(b, str):  # a consistency or format problem: a is the message
                    print(f"  {s:<6} {metric:<16} {str(user):>12}  {a}")
                else:
                    print(f"  {s:<6} {metric:<16} {str(user):>12}  {fmt(a):<24} {fmt(b)}")
                shown += 1
        if shown < total:
            print(f"  ... and {total - shown} more")
        return EXIT_FAIL
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
