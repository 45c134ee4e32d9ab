# Sourced by the reproduction scripts: `tune` runs one `rzoo tune` study from the options the
# scripts give (kept short so that each model's search reads as one line), and prints one line:
# the label, the setting chosen on validation, its validation value and the reported test metrics
# (mean ± sd over the seeds). The study folder (--out) holds everything else (rzoo tune --help).
#
#   tune CONFIG --out DIR [--metric M] [--grid KEY=[V,...]]... [--set KEY=VALUE]...
#        [--seeds 1,2,3] [--grid-with-first-seed] [--refit KEY=VALUE]... [--also-eval eval.K=V]...
#        [--base STUDY_DIR] [--summary FILE] [--report m1,m2] [--label TEXT] [--jobs N]
#
# --grid KEY=[...] becomes search.space.KEY; without any --grid the study has one trial (the
# config as it is: search.space.seed=[its seed]). --seeds: search.seeds (each seed's run is
# DIR/seed-S). --grid-with-first-seed: the trials run with the first of --seeds, so the chosen
# trial is that seed's run (a run fewer per study). --refit KEY=VALUE (repeatable): search.refit
# with those search.refit_sets (the refit runs, DIR/refit-S, train for the epochs each seed's
# validated run chose; the validated figures are printed beside them). --also-eval (repeatable):
# search.also_eval. In --set, --refit and --also-eval values, {seed} is each run's seed (e.g.
# pre-training from the same seed's run of another study: OTHER/seed-{seed}).
# Coordinate-wise tuning: every study writes DIR/chosen.sets, the assignments chosen so far (its
# --base's and its own); --base STUDY_DIR applies that study's chosen.sets after this call's --set
# (so they win), and this study's grid tunes further keys; the base study's finished runs are
# copied where this one would train the same configuration (search.reuse). --summary FILE: the
# chosen setting, the final runs and the test figures as JSON. --lower and --refit-best-epoch are accepted for old
# command lines (rzoo knows which metrics are lower-is-better; a refit always runs for the
# validated epoch count). RZOO (build/rzoo) is the program; RZOO_TUNE_ARGS more options.
# (rzoo_tune is the function; `tune` calls it, for scripts that wrap it in their own `tune`.)
tune() { rzoo_tune "$@"; }
rzoo_tune() {
  local config=$1
  shift
  local args=() out="" label="" report="" refit=() also=() base="" summary="" grid=0 seed=2020 seeds="" first_seed=0
  while [ $# -gt 0 ]; do
    case $1 in
      --out) out=$2; shift 2 ;;
      --metric) args+=(--set "search.metric=$2"); shift 2 ;;
      --lower|--refit-best-epoch) shift ;;
      --grid) args+=(--set "search.space.${2%%=*}=${2#*=}"); grid=1; shift 2 ;;
      --set)
        args+=(--set "$2")
        [[ $2 == seed=* ]] && seed=${2#seed=}
        shift 2 ;;
      --seeds) seeds=$2; args+=(--set "search.seeds=[$2]"); shift 2 ;;
      --grid-with-first-seed) first_seed=1; shift ;;
      --refit) refit+=("'$2'"); shift 2 ;;
      --also-eval) also+=("'$2'"); shift 2 ;;
      --base) base=$2; shift 2 ;;
      --summary) summary=$2; shift 2 ;;
      --report) report=$2; shift 2 ;;
      --label) label=$2; shift 2 ;;
      --jobs) args+=(--set "search.jobs=$2"); shift 2 ;;
      *) echo "tune: unsupported option $1" >&2; return 2 ;;
    esac
  done
  [ -n "$out" ] || { echo "tune: --out DIR is required" >&2; return 2; }
  if [ $first_seed -eq 1 ]; then
    [ -n "$seeds" ] || { echo "tune: --grid-with-first-seed needs --seeds" >&2; return 2; }
    seed=${seeds%%,*}
    args+=(--set "seed=$seed")
  fi
  local based=()
  if [ -n "$base" ]; then
    [ -f "$base/chosen.sets" ] || { echo "tune: --base $base: no $base/chosen.sets (run that study first)" >&2; return 2; }
    while IFS= read -r line; do [ -n "$line" ] && based+=(--set "$line"); done < "$base/chosen.sets"
    # Its runs are taken where this stage would train the same configuration (the base's chosen
    # setting is usually this grid's first trial, and its seed runs and refits this stage's too).
    based+=(--set "search.reuse=[$base]")
  fi
  [ $grid -eq 1 ] || args+=(--set "search.space.seed=[$seed]")
  local sets
  if [ ${#refit[@]} -gt 0 ]; then
    sets=$(IFS=,; echo "${refit[*]}")
    args+=(--set search.refit=true --set "search.refit_sets=[$sets]")
  fi
  if [ ${#also[@]} -gt 0 ]; then
    sets=$(IFS=,; echo "${also[*]}")
    args+=(--set "search.also_eval=[$sets]")
  fi
  mkdir -p "$(dirname "$out")"
  # shellcheck disable=SC2086
  "${RZOO:-build/rzoo}" tune "$config" --quiet --out "$out" --set search.method=grid "${args[@]}" "${based[@]}" ${RZOO_TUNE_ARGS:-} || return $?
  /usr/bin/python3 - "$out" "${label:-$out}" "$report" "$base" "$summary" <<'PY'
import json, os, sys
out, label, report, base, summary = sys.argv[1], sys.argv[2], [m for m in sys.argv[3].split(",") if m], sys.argv[4], sys.argv[5]
st = json.load(open(os.path.join(out, "study.json")))
best = st["best"]
setting = next(t["setting"] for t in st["trials"] if t["trial"] == best["trial"])
# The assignments chosen so far: the base study's, then this one's (the placeholder seed
# "space" of a study without a grid is not a choice).
chosen = {}
if base:
    for line in open(os.path.join(base, "chosen.sets")):
        if line.strip():
            k, v = line.rstrip("\n").split("=", 1)
            chosen[k] = v
own = {k: str(v) for k, v in setting.items() if not (k == "seed" and len(setting) == 1)}
chosen.update(own)
tmp = os.path.join(out, "chosen.sets.tmp")
with open(tmp, "w") as f:
    f.write("".join(f"{k}={v}\n" for k, v in chosen.items()))
os.replace(tmp, os.path.join(out, "chosen.sets"))
test = st.get("test", {})
runs = len(test.get("runs", []))
def fmt(table, m):
    e = table.get(m)
    if e is None: return f"{m} ?"
    sd = e.get("sd")
    return f'{m} {e["mean"]:.4f}' + (f' ± {sd:.4f}' if sd is not None else "")
report = report or list(test.get("metrics", {}))[:2]
# A table without the reported metrics (also_eval with other eval.ks) shows its own first two.
line = lambda table: ", ".join(fmt(table, m) for m in (report if any(m in table for m in report) else list(table)[:2]))
shown = " ".join(f"{k}={v}" for k, v in own.items())
text = (f'{label}: {shown or "(as configured)"} | valid {st["metric"]} {best["value"]:.4f} | test'
        f'{" (" + str(runs) + " seeds)" if runs > 1 else ""}{" refit on train + valid" if test.get("refit") else ""} '
        + line(test.get("metrics", {})))
also = test.get("also_eval")
if also:
    text += f' | with {" ".join(also["sets"])}: ' + line(also["metrics"])
if test.get("refit"):
    text += " | as validated: " + line(test.get("validated_metrics", {}))
    if also:
        text += f', with {" ".join(also["sets"])}: ' + line(also.get("validated_metrics", {}))
print(text, flush=True)
if summary:
    s = {"label": label, "study": out, "chosen": chosen, "valid": best["value"], "best_run": os.path.join(out, best["run"]),
         "finals": [{"seed": sd, "run": os.path.join(out, r)} for sd, r in zip(test.get("seeds", []), test.get("runs", []))],
         "test": test}
    with open(summary + ".tmp", "w") as f:
        json.dump(s, f, indent=1)
    os.replace(summary + ".tmp", summary)
PY
}
