"""Helpers shared by the RecBole drivers (bench/peers/rb.py, prep_data.py; bench/context/*.py)."""
import json


def split_counts(n, ratios=(0.8, 0.1, 0.1)):
    """Rows per part of a random split of n rows, as RecBole 1.2 (Dataset._calcu_split_ids) cuts."""
    cnt = [int(r * n) for r in ratios]
    cnt[0] = n - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * n < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def parse_kv(items):
    """["key=json", ...] -> {key: value}; a value that is not JSON stays a string."""
    out = {}
    for s in items:
        k, v = s.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out
