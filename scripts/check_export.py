#!/usr/bin/env python3
"""Checks an rzoo TorchScript export with plain PyTorch (no rzoo code): loads MODEL with
torch.jit.load, recomputes the scores and recommendations listed in CASES (JSON written by the
C++ test from the in-memory model) and compares them to 1e-5.

usage: check_export.py MODEL CASES.json
CASES: {"users": [...], "items": [...], "scores": [...],            score(users, items)
        "rec_users": [...], "k": K, "rec_scores": [[...], ...],      recommend(rec_users, K)
        "raw_user": "...", "raw_items": [...],                        recommend_raw(raw_user, K)
        "history": [...], "history_items": [...], "history_scores": [...]}   (optional)
                                                                     recommend_history(history, K)
        "evidence": [...], "evidence_weights": [...]                 explain_history(history,
                                                                       history_items[0], 3) (optional)
Exit 0 when everything agrees, 1 otherwise, 77 when torch is missing (the test then skips).
"""
import json
import sys

try:
    import torch
except ImportError:
    print("check_export: torch is missing for this python (apt-get install python3-torch); skipped")
    sys.exit(77)


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    extra = {"config.yaml": "", "users.txt": "", "items.txt": "", "rzoo.txt": ""}
    m = torch.jit.load(sys.argv[1], _extra_files=extra)
    with open(sys.argv[2]) as f:
        case = json.load(f)
    bad = []
    for name in ("config.yaml", "users.txt", "items.txt", "rzoo.txt"):
        if not extra[name]:
            bad.append(f"extra file {name} missing or empty")
    users = torch.tensor(case["users"], dtype=torch.long)
    items = torch.tensor(case["items"], dtype=torch.long)
    got = m.score(users, items)
    want = torch.tensor(case["scores"], dtype=torch.float32)
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-5, atol=1e-5):
        bad.append(f"score: max abs diff {float((got - want).abs().max()):.3g}")
    values, idx = m.recommend(torch.tensor(case["rec_users"], dtype=torch.long), case["k"])
    want_v = torch.tensor(case["rec_scores"], dtype=torch.float32)
    if values.shape != want_v.shape or not torch.allclose(values, want_v, rtol=1e-5, atol=1e-5):
        bad.append(f"recommend scores differ: {values.tolist()[:1]} vs {want_v.tolist()[:1]}")
    # Items may swap where scores tie; each returned item must score its returned value.
    again = m.score(torch.tensor(case["rec_users"]).repeat_interleave(idx.size(1)), idx.reshape(-1))
    finite = torch.isfinite(values.reshape(-1))
    if not torch.allclose(again[finite], values.reshape(-1)[finite], rtol=1e-5, atol=1e-5):
        bad.append("recommend: returned items do not score their returned values")
    raw_items, raw_scores = m.recommend_raw(case["raw_user"], case["k"])
    if raw_items != case["raw_items"]:
        bad.append(f"recommend_raw: {raw_items} vs {case['raw_items']}")
    if m.user_index(case["raw_user"]) < 0 or m.user_index("\u0000no such user") != -1:
        bad.append("user_index")
    try:
        m.score(torch.tensor([m.n_users]), torch.tensor([0]))
        bad.append("an out-of-range user index was accepted")
    except Exception as e:  # torch.jit.Error
        if "out of range" not in str(e):
            bad.append(f"out-of-range error without a clear message: {e}")
    if "history" in case:
        h_items, h_scores = m.recommend_history(case["history"], case["k"])
        want_h = torch.tensor(case["history_scores"], dtype=torch.float32)
        if len(h_scores) != len(want_h) or not torch.allclose(torch.tensor(h_scores, dtype=torch.float32), want_h, rtol=1e-5, atol=1e-5):
            bad.append(f"recommend_history scores differ: {h_scores[:3]} vs {want_h.tolist()[:3]}")
        elif h_items != case["history_items"]:
            # Items may swap where scores tie: each must score its value after that history.
            s = m.score_history(torch.tensor([m.item_index(i) for i in case["history"]]))
            again = s[torch.tensor([m.item_index(i) for i in h_items])]
            if not torch.allclose(again, want_h, rtol=1e-5, atol=1e-5):
                bad.append(f"recommend_history: {h_items} vs {case['history_items']}")
        if "evidence" in case:
            ev, ev_w = m.explain_history(case["history"], case["history_items"][0], 3)
            want_w = torch.tensor(case["evidence_weights"], dtype=torch.float64)
            if len(ev_w) != len(want_w) or not torch.allclose(torch.tensor(ev_w, dtype=torch.float64), want_w, rtol=1e-5, atol=1e-6):
                bad.append(f"explain_history weights differ: {ev_w} vs {want_w.tolist()}")
            elif len(set(case["evidence_weights"])) == len(case["evidence_weights"]) and ev != case["evidence"]:
                bad.append(f"explain_history evidence differs: {ev} vs {case['evidence']}")
        try:
            m.recommend_history(case["history"] + ["\u0000no such item"], case["k"])
            bad.append("recommend_history accepted an unknown item id")
        except Exception as e:  # torch.jit.Error
            if "unknown item id" not in str(e):
                bad.append(f"unknown item id without a clear message: {e}")
    print(f"check_export: {m.model_name}, {m.n_users} users, {m.n_items} items: " + ("ok" if not bad else "FAILED"))
    for b in bad:
        print("  " + b)
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
