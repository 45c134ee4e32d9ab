#!/usr/bin/python3
"""Write ML-100K as RecBole atomic files for the CTR (context-aware) benchmark.

Both sides read these same files: RecBole via bench/context/recbole_ctr.py, rzoo's context-aware
models later.

  OUT/ml100k-ctr.{train,valid,test}.inter  user_id:token item_id:token label:float timestamp:float
                                           every u.data row, label = 1 if rating >= 4 else 0;
                                           one global seeded random 80/10/10 split over all rows
                                           (numpy RandomState(seed).permutation, part sizes by
                                           RecBole 1.2's _calcu_split_ids rule); each file keeps
                                           the u.data line order
  OUT/ml100k-ctr.user                      user_id:token age:float gender:token occupation:token
                                           zip_code:token   (u.user)
  OUT/ml100k-ctr.item                      item_id:token release_year:token genre:token_seq
                                           (u.item; genre = space-separated u.genre names as in
                                           RecBole's ml-100k.item `class`; release_year empty when
                                           the release date is missing; titles skipped)
Usage: /usr/bin/python3 prep_ctr.py [--data ../shared/data/ml-100k] [--out build/ctr-data/ml100k-ctr]
                           [--seed 2020]
(/usr/bin/python3: Debian numpy; the pyenv python3 on PATH has none. The peers venv works too.)
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "peers"))
from rbutil import split_counts  # noqa: E402

NAME = "ml100k-ctr"


def write_atomic(path, header, lines):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(header + "\n")
        for line in lines:
            f.write(line + "\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/ml-100k")
    ap.add_argument("--out", default=os.path.join("build", "ctr-data", NAME))
    ap.add_argument("--seed", type=int, default=2020)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, NAME)

    # --- interactions
    rows = np.loadtxt(os.path.join(args.data, "u.data"), dtype=np.int64)  # user item rating timestamp
    assert rows.ndim == 2 and rows.shape[1] == 4, rows.shape
    label = (rows[:, 2] >= 4).astype(np.int64)
    n = len(rows)
    perm = np.random.RandomState(args.seed).permutation(n)
    a, b, _ = split_counts(n)
    parts = {"train": perm[:a], "valid": perm[a:a + b], "test": perm[a + b:]}
    hdr = "user_id:token\titem_id:token\tlabel:float\ttimestamp:float"
    for part, idx in parts.items():
        idx = np.sort(idx)  # back to u.data line order
        write_atomic(f"{base}.{part}.inter", hdr,
                     (f"{rows[i, 0]}\t{rows[i, 1]}\t{label[i]}\t{rows[i, 3]}" for i in idx))
        print(f"{part}: {len(idx)} rows, {len(np.unique(rows[idx, 0]))} users, "
              f"{len(np.unique(rows[idx, 1]))} items, positive rate {label[idx].mean():.4f}")
    print(f"all: {n} rows, positive rate {label.mean():.4f}")

    # --- users
    users = []
    with open(os.path.join(args.data, "u.user"), encoding="latin-1") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            uid, age, gender, occ, zipc = line.split("|")
            users.append(f"{uid}\t{age}\t{gender}\t{occ}\t{zipc}")
    write_atomic(f"{base}.user", "user_id:token\tage:float\tgender:token\toccupation:token\tzip_code:token", users)
    print(f"user: {len(users)} rows")

    # --- items
    genres = []
    with open(os.path.join(args.data, "u.genre"), encoding="latin-1") as f:
        for line in f:
            line = line.strip()
            if line:
                name, gid = line.split("|")
                assert int(gid) == len(genres) and " " not in name, line
                genres.append(name)
    items, no_year, no_genre = [], 0, 0
    with open(os.path.join(args.data, "u.item"), encoding="latin-1") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            fs = line.split("|")
            assert len(fs) == 5 + len(genres), (len(fs), line)
            date = fs[2].strip()  # e.g. 01-Jan-1995
            year = date.rsplit("-", 1)[-1] if date else ""
            no_year += year == ""
            g = " ".join(name for name, flag in zip(genres, fs[5:]) if flag.strip() == "1")
            no_genre += g == ""
            items.append(f"{fs[0]}\t{year}\t{g}")
    write_atomic(f"{base}.item", "item_id:token\trelease_year:token\tgenre:token_seq", items)
    print(f"item: {len(items)} rows ({no_year} without release year, {no_genre} without genre)")


if __name__ == "__main__":
    main()
