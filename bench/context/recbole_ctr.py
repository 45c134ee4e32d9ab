"""RecBole 1.2.1 side of the CTR benchmark: context-aware models on the ML-100K CTR files.

Reads the files bench/context/prep_ctr.py writes (the same split rzoo's context-aware models read),
trains each model of --models with each seed of --seeds (early stopping on valid AUC), tests the
best-valid checkpoint, prints one JSON line per run and writes them all to --out (JSONL, written
atomically at the end).

  build/peers-venv/bin/python bench/context/recbole_ctr.py [--data build/ctr-data/ml100k-ctr]
      [--models LR,FM,WideDeep,DeepFM,DCNV2] [--seeds 2020] [--epochs 50] [--embedding-size 16]
      [--threads 2] [--numerical age] [--out build/ctr-data/recbole.jsonl] [--set key=json ...]

Like bench/peers/rb.py it builds RecBole's pieces directly (recbole.quick_start imports ray).

How RecBole 1.2.1 uses the fields (read from recbole/model/abstract_recommender.py,
ContextRecommender, and recbole/data/dataset/dataset.py, _normalize/_discretization):
  - token fields (user_id, item_id, gender, occupation, zip_code, release_year): one embedding
    table each (FMEmbedding, offsets into one table) plus a first-order weight each
    (FMFirstOrderLinear). An empty release_year is a missing token: RecBole maps it to the padding
    id 0, which still has its own (trainable) embedding row.
  - token_seq field (genre): nn.Embedding per field, masked MEAN over the item's genres for the
    second-order part (embed_token_seq_fields mode='mean'); the first-order part SUMS the genre
    weights.
  - float fields are used ONLY if listed in `numerical_features` (default []: then they are loaded
    but silently ignored by every context-aware model). A listed float field without a
    `discretization` entry becomes the pair (value, 1) and is embedded as value * v_field
    (FLEmbedding; one vector per field, first-order weight * value). With `discretization`
    ({field: {method: ED, bucket: N}} or LD) it becomes (1, bucket) and is embedded like a token.
    No dataset yaml applies to the dataset name 'ml100k-ctr', so normalize_all is off; this
    script sets normalize_field to the --numerical fields (min-max to [0, 1] over the loaded
    table, for age: the 943 users' ages, 7..73).
    Default here: numerical_features [age] (value * vector, min-max normalised); timestamp is
    loaded (load_col) but not in numerical_features, so no model sees it; label (float) is the
    target (LABEL_FIELD), never a feature.
  - the CTR evaluation keys are those of RecBole's quick_start_config/context-aware.yaml:
    eval_args {group_by: None, order: RO, mode: labeled} (split is unused with
    benchmark_filename), train_neg_sample_args None (train on the given 0/1 labels, no
    sampling), metrics [AUC, LogLoss], valid_metric AUC (AUC over all valid rows, not per user).
Model hyper-parameters not set here keep RecBole's model yaml defaults; every run's JSON line
records the ones that matter (dropout_prob WideDeep 0.1, DeepFM 0.2, DCNV2 0.2; DCNV2 also
cross_layer_num 3, mixed False, structure stacked, reg_weight 2).
DCNV2 note: its loss is BCE + reg_weight * sum_l ||W_l||_F (Frobenius norm, not squared) over the
cross-layer matrices, which are N(0, 1) at init (torch.randn; xavier init skips raw Parameters), so
with 8 fields x 16 = 128 inputs the reported train loss is ~730 per batch, almost all penalty.
"""
import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import time
import warnings

import torch

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--data", default=os.path.join("build", "ctr-data", "ml100k-ctr"),
                help="folder holding ml100k-ctr.{train,valid,test}.inter, .user, .item")
ap.add_argument("--models", default="LR,FM,WideDeep,DeepFM,DCNV2")
ap.add_argument("--seeds", default="2020")
ap.add_argument("--epochs", type=int, default=50)
ap.add_argument("--embedding-size", type=int, default=16)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--numerical", default="age",
                help="comma list of float fields the models use (numerical_features, min-max normalised); "
                     "'' = RecBole's default (float fields ignored)")
ap.add_argument("--out", default=os.path.join("build", "ctr-data", "recbole.jsonl"))
ap.add_argument("--workdir", default=os.path.join("build", "ctr-data", "recbole"),
                help="RecBole's log/, log_tensorboard/ and checkpoints go here")
ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="extra RecBole config entries")
ap.add_argument("--verbose", action="store_true", help="print one line per epoch to stderr")
args = ap.parse_args()
warnings.filterwarnings("ignore", category=FutureWarning)  # pandas 2.2 on RecBole 1.2.1's fillna/agg

torch.set_num_threads(args.threads)
from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.utils import get_model, get_trainer, init_logger, init_seed  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "peers"))
from rbutil import parse_kv  # noqa: E402

data_dir = os.path.abspath(args.data)
dataset_name = os.path.basename(os.path.normpath(data_dir))
data_path = os.path.dirname(os.path.normpath(data_dir))  # RecBole reads data_path/dataset/dataset.*
workdir = os.path.abspath(args.workdir)
out_path = os.path.abspath(args.out)
DEEP = {"WideDeep", "DeepFM", "DCNV2"}


def base_config(model, seed):
    numerical = [f for f in args.numerical.split(",") if f]
    cfg = {
        "data_path": data_path,
        "benchmark_filename": ["train", "valid", "test"],
        "LABEL_FIELD": "label",
        "threshold": None,  # the files carry the 0/1 label already
        "load_col": {
            "inter": ["user_id", "item_id", "label", "timestamp"],
            "user": ["user_id", "age", "gender", "occupation", "zip_code"],
            "item": ["item_id", "release_year", "genre"],
        },
        "numerical_features": numerical,
        "normalize_field": numerical or None,
        "normalize_all": None,
        "eval_args": {"group_by": None, "order": "RO", "mode": "labeled"},
        "train_neg_sample_args": None,
        "metrics": ["AUC", "LogLoss"],
        "valid_metric": "AUC",
        "embedding_size": args.embedding_size,
        "learning_rate": 0.001,
        "train_batch_size": 2048,
        "eval_batch_size": 4096,
        "epochs": args.epochs,
        "stopping_step": 5,
        "eval_step": 1,
        "weight_decay": 0.0,
        "use_gpu": False,
        "device": "cpu",
        "show_progress": False,
        "state": "WARNING",
        "log_wandb": False,
        "checkpoint_dir": os.path.join(workdir, "saved", f"{model}-s{seed}"),
        "seed": seed,
        "reproducibility": True,
    }
    if model in DEEP:
        cfg["mlp_hidden_size"] = [64, 64]
    cfg.update(parse_kv(args.set))
    return cfg


def run(model_name, seed):
    t_start = time.perf_counter()
    cfg = base_config(model_name, seed)
    argv, sys.argv = sys.argv, sys.argv[:1]  # RecBole's Config also parses the command line
    try:
        config = Config(model=model_name, dataset=dataset_name, config_dict=cfg)
    finally:
        sys.argv = argv
    config["device"] = torch.device("cpu")
    init_seed(config["seed"], config["reproducibility"])
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)  # RecBole writes log/ and log_tensorboard/ under the current directory
    init_logger(config)
    logging.getLogger().setLevel(logging.WARNING)
    t0 = time.perf_counter()
    ds = create_dataset(config)
    train, valid, test = data_preparation(config, ds)
    load_s = time.perf_counter() - t0
    torch.set_num_threads(args.threads)
    init_seed(config["seed"], config["reproducibility"])  # model init independent of data loading
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    epoch_s, valid_auc, losses = [], [], []
    train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

    def timed_train_epoch(train_data, epoch_idx, *a, **kw):
        t = time.perf_counter()
        loss = train_epoch(train_data, epoch_idx, *a, **kw)
        epoch_s.append(time.perf_counter() - t)
        losses.append(float(sum(loss) if isinstance(loss, tuple) else loss))
        return loss

    def logged_valid_epoch(valid_data, *a, **kw):
        score, res = valid_epoch(valid_data, *a, **kw)
        valid_auc.append(float(score))
        if args.verbose:
            print(f"  {model_name} s{seed} epoch {len(epoch_s)}: loss {losses[-1]:.4f} "
                  f"{epoch_s[-1]:.2f} s, valid AUC {score:.4f}", file=sys.stderr, flush=True)
        return score, res

    trainer._train_epoch, trainer._valid_epoch = timed_train_epoch, logged_valid_epoch
    t0 = time.perf_counter()
    best_valid, best_res = trainer.fit(train, valid, saved=True, show_progress=False, verbose=False)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    test_res = trainer.evaluate(test, load_best_model=True, show_progress=False)
    test_eval_s = time.perf_counter() - t0
    shutil.rmtree(cfg["checkpoint_dir"], ignore_errors=True)

    keys = ["embedding_size", "mlp_hidden_size", "dropout_prob", "cross_layer_num", "mixed", "structure",
            "reg_weight", "learning_rate", "train_batch_size", "eval_batch_size", "weight_decay", "stopping_step",
            "numerical_features", "normalize_field", "eval_args", "train_neg_sample_args"]
    used = {k: config[k] for k in keys if config[k] is not None}
    fields = {
        "token": list(model.token_field_names),
        "token_seq": list(model.token_seq_field_names),
        "float": list(model.float_field_names),
    }
    return {
        "system": "recbole", "recbole": __import__("recbole").__version__, "model": model_name, "seed": seed,
        "best_valid_auc": float(best_valid),
        "best_valid": {k: float(v) for k, v in (best_res or {}).items()},
        "test_auc": float(test_res["auc"]), "test_logloss": float(test_res["logloss"]),
        "epochs_trained": len(epoch_s), "best_epoch": valid_auc.index(max(valid_auc)) + 1 if valid_auc else None,
        "median_epoch_s": statistics.median(epoch_s) if epoch_s else None,
        "total_s": time.perf_counter() - t_start, "load_s": load_s, "fit_s": fit_s, "test_eval_s": test_eval_s,
        "epoch_s": [round(s, 4) for s in epoch_s], "valid_auc": [round(a, 6) for a in valid_auc],
        "train_loss": [round(x, 6) for x in losses],
        "rows": {"train": len(train.dataset), "valid": len(valid.dataset), "test": len(test.dataset)},
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "fields": fields, "config": used, "torch_threads": torch.get_num_threads(),
    }


results = []
for m in [x for x in args.models.split(",") if x]:
    for s in [int(x) for x in args.seeds.split(",") if x]:
        r = run(m, s)
        results.append(r)
        print(json.dumps(r), flush=True)

os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
tmp = out_path + ".tmp"
with open(tmp, "w") as f:
    for r in results:
        f.write(json.dumps(r) + "\n")
os.replace(tmp, out_path)
print(f"wrote {len(results)} runs to {out_path}", file=sys.stderr)
