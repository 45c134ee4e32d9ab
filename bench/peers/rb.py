"""RecBole 1.2.1 driver (no quick_start: it imports ray). Prints one line 'RESULT {json}'.

  python rb.py epochs   DATA_DIR MODEL EPOCHS        seconds per training epoch (BPR, NeuMF) on ml100k
  python rb.py evaltime DATA_DIR REPEATS             full-ranking test evaluation of BPR (64) on ncf1m
  python rb.py fit      DATA_DIR MODEL [key=value]   closed-form fit (ItemKNN, EASE) on ncf1m
  python rb.py accuracy DATA_DIR OUT MODEL [key=value ...]  train (early stopping on valid MRR@10)
                                                     and test on ml100k, full ranking
  python rb.py seqepochs DATA_DIR MODEL EPOCHS [key=value ...]  sequential model (SASRec, BERT4Rec,
                                                     GRU4Rec) with RecBole's sequential defaults on
                                                     ml100kseq (u.data, split by RecBole: time-ordered
                                                     leave-one-out, data augmentation, max length 50,
                                                     CE, batch 2048, full ranking): seconds per
                                                     training epoch, then one full-ranking evaluation
                                                     of valid and of test (all users), each timed.
                                                     $RB_BUDGET_S (default none): start no further
                                                     epoch once the epochs so far plus the last one
                                                     would pass this many seconds (at least 1 epoch).
All on RecBole's benchmark files written by prep_data.py; 2 torch threads.
"""
import json, logging, os, statistics, sys, time

import torch

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_seed, init_logger

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rbutil import parse_kv as parse  # noqa: E402

mode, data_dir = sys.argv[1], os.path.abspath(sys.argv[2])


def setup(model, dataset, extra, out=os.path.join(os.environ.get("OUT", "."), "recbole")):
    cfg = {
        "data_path": data_dir,
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]},
        "use_gpu": False,
        "device": "cpu",
        "show_progress": False,
        "state": "WARNING",
        "checkpoint_dir": os.path.join(out, "saved"),
        "log_wandb": False,
        "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"],
        "topk": [10],
        "valid_metric": "MRR@10",
        "seed": 2020,
    }
    cfg.update(extra)
    config = Config(model=model, dataset=dataset, config_dict=cfg)
    config["device"] = torch.device("cpu")
    init_seed(config["seed"], config["reproducibility"])
    os.makedirs(out, exist_ok=True)
    os.chdir(out)  # RecBole writes log/ and log_tensorboard/ (at Trainer creation) under the current directory
    init_logger(config)
    logging.getLogger().setLevel(logging.WARNING)
    t0 = time.perf_counter()
    ds = create_dataset(config)
    train, valid, test = data_preparation(config, ds)
    load_s = time.perf_counter() - t0
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    return config, ds, train, valid, test, load_s


def result(**kw):
    kw["torch_threads"] = torch.get_num_threads()
    print("RESULT " + json.dumps(kw), flush=True)


if mode == "epochs":
    model_name, epochs = sys.argv[3], int(sys.argv[4])
    config, ds, train, valid, test, load_s = setup(model_name, "ml100k", parse(sys.argv[5:]))
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    secs = []
    for e in range(epochs):
        t0 = time.perf_counter()
        loss = trainer._train_epoch(train, e, show_progress=False)
        secs.append(time.perf_counter() - t0)
    result(system="recbole", model=model_name, data="ml100k", train_rows=len(train.dataset), epochs=secs,
           median_epoch_s=statistics.median(secs), load_s=load_s)

elif mode == "evaltime":
    reps = int(sys.argv[3])
    config, ds, train, valid, test, load_s = setup("BPR", "ncf1m", {"embedding_size": 64})
    model = get_model("BPR")(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], "BPR")(config, model)
    secs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        res = trainer.evaluate(test, load_best_model=False, show_progress=False)
        secs.append(time.perf_counter() - t0)
    result(system="recbole", what="full-ranking test eval, BPR 64 random init", data="ncf1m",
           users=ds.user_num - 1, items=ds.item_num - 1, eval_s=secs, median_eval_s=statistics.median(secs),
           metrics={k: float(v) for k, v in res.items()}, load_s=load_s)

elif mode == "fit":
    model_name = sys.argv[3]
    extra = parse(sys.argv[4:])
    config, ds, train, valid, test, load_s = setup(model_name, "ncf1m", extra)
    t0 = time.perf_counter()  # ItemKNN and EASE compute everything in __init__
    model = get_model(model_name)(config, train._dataset).to(config["device"])
    fit_s = time.perf_counter() - t0
    result(system="recbole", model=model_name, data="ncf1m", params=extra, fit_s=fit_s, load_s=load_s,
           train_rows=len(train.dataset))

elif mode == "accuracy":
    out, model_name = os.path.abspath(sys.argv[3]), sys.argv[4]
    extra = parse(sys.argv[5:])
    config, ds, train, valid, test, load_s = setup(model_name, "ml100k", extra, out)
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    t0 = time.perf_counter()
    best_valid, best_res = trainer.fit(train, valid, saved=True, show_progress=False)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = trainer.evaluate(test, load_best_model=True, show_progress=False)
    eval_s = time.perf_counter() - t0
    result(system="recbole", model=model_name, params=extra, data="ml100k", best_valid_score=float(best_valid),
           epochs_run=len(getattr(trainer, "train_loss_dict", {}) or {}), fit_s=fit_s, test_eval_s=eval_s,
           valid={k: float(v) for k, v in best_res.items()}, test={k: float(v) for k, v in res.items()})
elif mode == "seqepochs":
    model_name, epochs = sys.argv[3], int(sys.argv[4])
    extra = parse(sys.argv[5:])
    seq = {
        # RecBole's own defaults for ml-100k and for sequential models (quick_start_config/sequential.yaml),
        # spelled out: the dataset here is named ml100kseq, so no dataset yaml of RecBole's applies.
        "benchmark_filename": None,
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "MAX_ITEM_LIST_LENGTH": 50,
        "train_neg_sample_args": None,  # required with loss_type CE
        "train_batch_size": 2048,
        "learning_rate": 0.001,
    }
    seq.update(extra)
    config, ds, train, valid, test, load_s = setup(model_name, "ml100kseq", seq)
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    budget = float(os.environ.get("RB_BUDGET_S", "inf"))
    secs, losses = [], []
    for e in range(epochs):
        if secs and sum(secs) + secs[-1] > budget:
            break
        t0 = time.perf_counter()
        loss = trainer._train_epoch(train, e, show_progress=False)
        secs.append(time.perf_counter() - t0)
        losses.append(float(loss if not isinstance(loss, tuple) else sum(loss)))
        print(f"epoch {e + 1}/{epochs} | loss {losses[-1]:.4f} | {secs[-1]:.2f} s", flush=True)
    ev = {}
    for name, part in (("valid", valid), ("test", test)):
        t0 = time.perf_counter()
        res = trainer.evaluate(part, load_best_model=False, show_progress=False)
        ev[name] = {"seconds": time.perf_counter() - t0, "metrics": {k: float(v) for k, v in res.items()}}
    keys = ["n_layers", "n_heads", "hidden_size", "inner_size", "embedding_size", "num_layers", "hidden_dropout_prob",
            "attn_dropout_prob", "dropout_prob", "hidden_act", "layer_norm_eps", "mask_ratio", "ft_ratio", "loss_type",
            "MAX_ITEM_LIST_LENGTH", "train_batch_size", "learning_rate", "eval_args"]
    result(system="recbole", model=model_name, data="ml100kseq", params=extra,
           config={k: config[k] for k in keys if k in config}, train_rows=len(train.dataset),
           valid_rows=len(valid.dataset), test_rows=len(test.dataset), epochs=secs, epochs_asked=epochs,
           losses=losses, median_epoch_s=statistics.median(secs) if secs else None, load_s=load_s,
           valid_eval_s=ev["valid"]["seconds"], test_eval_s=ev["test"]["seconds"], valid=ev["valid"]["metrics"],
           test=ev["test"]["metrics"])
else:
    sys.exit("unknown mode " + mode)
