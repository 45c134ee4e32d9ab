"""Write the shared inputs as RecBole atomic files (both rzoo and the peers read these same files).

  OUT/ml100k/ml100k.{train,valid,test}.inter  ML-100K u.data, seeded per-user random 80/10/10
                                              (RecBole's RS split rule, numpy seed 2020)
  OUT/ncf1m/ncf1m.{train,valid,test}.inter    NCF ML-1M: train = ml-1m.train.pairs (994,169 pairs),
                                              valid = test = ml-1m.test.rating (one item per user)
  OUT/ml100kseq/ml100kseq.inter               ML-100K u.data unsplit, every row, sorted by (user,
                                              timestamp, u.data line): both sides split it themselves
                                              (time-ordered leave-one-out; both sort stably, so equal
                                              timestamps keep this order on both sides)
Usage: python prep_data.py DATA_DIR OUT_DIR [PART ...]   (PART: ml100k ncf1m ml100kseq; default all)
"""
import os, sys
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rbutil import split_counts  # noqa: E402

data, out = sys.argv[1], sys.argv[2]
PARTS = sys.argv[3:] or ["ml100k", "ncf1m", "ml100kseq"]
HDR = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def write(path, rows):
    with open(path, "w") as f:
        f.write(HDR)
        for u, i, r, t in rows:
            f.write(f"{u}\t{i}\t{r}\t{t}\n")


# ML-100K: every rating is a positive (RecBole's default for ml-100k: no threshold, no filter).
rows = np.loadtxt(os.path.join(data, "ml-100k/u.data"), dtype=np.int64)
if "ml100kseq" in PARTS:
    order = np.lexsort((np.arange(len(rows)), rows[:, 3], rows[:, 0]))  # user, then time, then line
    os.makedirs(os.path.join(out, "ml100kseq"), exist_ok=True)
    write(os.path.join(out, "ml100kseq/ml100kseq.inter"), rows[order].tolist())
    print("ml100kseq:", len(rows), "rows,", len(np.unique(rows[:, 0])), "users,", len(np.unique(rows[:, 1])), "items")
if "ml100k" not in PARTS and "ncf1m" not in PARTS:
    sys.exit(0)
rng = np.random.RandomState(2020)
parts = {"train": [], "valid": [], "test": []}
for u in np.unique(rows[:, 0]):
    r = rows[rows[:, 0] == u]
    r = r[rng.permutation(len(r))]
    a, b, c = split_counts(len(r))
    parts["train"] += r[:a].tolist()
    parts["valid"] += r[a:a + b].tolist()
    parts["test"] += r[a + b:].tolist()
os.makedirs(os.path.join(out, "ml100k"), exist_ok=True)
for k, v in parts.items():
    write(os.path.join(out, f"ml100k/ml100k.{k}.inter"), v)
print("ml100k:", {k: len(v) for k, v in parts.items()})
if "ncf1m" not in PARTS:
    sys.exit(0)

# NCF ML-1M train pairs and its test item per user.
os.makedirs(os.path.join(out, "ncf1m"), exist_ok=True)
pairs = np.loadtxt(os.path.join(data, "ncf-ml-1m/ml-1m.train.pairs"), dtype=np.int64)
test = np.loadtxt(os.path.join(data, "ncf-ml-1m/ml-1m.test.rating"), dtype=np.int64)
write(os.path.join(out, "ncf1m/ncf1m.train.inter"), ((u, i, 1, 0) for u, i in pairs))
for k in ("valid", "test"):
    write(os.path.join(out, f"ncf1m/ncf1m.{k}.inter"), ((u, i, 1, t) for u, i, _, t in test))
print("ncf1m: train", len(pairs), "test", len(test))
