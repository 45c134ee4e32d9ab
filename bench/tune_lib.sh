# Sourced by the reproduction scripts: `tune` runs one `rzoo tune` study from the options the
# scripts give (kept short so that each model's search reads as one line), and prints one line:
# the label, the setting chosen on validation, its validation value and the reported test metrics
# (mean ± sd over the seeds). The study folder (--out) holds everything else (rzoo tune --help).
#
#   tune CONFIG --out DIR [--metric M] [--lower] [--grid KEY=[V,...]]... [--set KEY=VALUE]...
#        [--seeds 1,2,3] [--refit KEY=VALUE]... [--report m1,m2] [--label TEXT] [--jobs N]
#
# --grid KEY=[...] becomes search.space.KEY; without any --grid the study has one trial (the
# config as it is: search.space.seed=[its seed]). --refit KEY=VALUE (repeatable): search.refit
# with those search.refit_sets. --lower is accepted for old command lines (rzoo knows which
# metrics are lower-is-better). RZOO (build/rzoo) is the program; RZOO_TUNE_ARGS more options.
tune() {
  local config=$1
  shift
  local args=() out="" label="" report="" refit=() grid=0 seed=2020
  while [ $# -gt 0 ]; do
    case $1 in
      --out) out=$2; shift 2 ;;
      --metric) args+=(--set "search.metric=$2"); shift 2 ;;
      --lower) shift ;;
      --grid) args+=(--set "search.space.${2%%=*}=${2#*=}"); grid=1; shift 2 ;;
      --set)
        args+=(--set "$2")
        [[ $2 == seed=* ]] && seed=${2#seed=}
        shift 2 ;;
      --seeds) args+=(--set "search.seeds=[$2]"); shift 2 ;;
      --refit) refit+=("'$2'"); shift 2 ;;
      --report) report=$2; shift 2 ;;
      --label) label=$2; shift 2 ;;
      --jobs) args+=(--set "search.jobs=$2"); shift 2 ;;
      *) echo "tune: unsupported option $1" >&2; return 2 ;;
    esac
  done
  [ -n "$out" ] || { echo "tune: --out DIR is required" >&2; return 2; }
  [ $grid -eq 1 ] || args+=(--set "search.space.seed=[$seed]")
  if [ ${#refit[@]} -gt 0 ]; then
    local sets
    sets=$(IFS=,; echo "${refit[*]}")
    args+=(--set search.refit=true --set "search.refit_sets=[$sets]")
  fi
  mkdir -p "$(dirname "$out")"
  # shellcheck disable=SC2086
  "${RZOO:-build/rzoo}" tune "$config" --quiet --out "$out" --set search.method=grid "${args[@]}" ${RZOO_TUNE_ARGS:-} || return $?
  /usr/bin/python3 - "$out/study.json" "${label:-$out}" "$report" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
label, report = sys.argv[2], [m for m in sys.argv[3].split(",") if m]
best = st["best"]
setting = next(t["setting"] for t in st["trials"] if t["trial"] == best["trial"])
test = st.get("test", {}).get("metrics", {})
def fmt(m):
    e = test.get(m)
    if e is None: return f"{m} ?"
    sd = e.get("sd")
    return f'{m} {e["mean"]:.4f}' + (f' ± {sd:.4f}' if sd is not None else "")
shown = " ".join(f"{k}={v}" for k, v in setting.items() if k != "seed" or len(setting) > 1)
runs = len(st.get("test", {}).get("runs", []))
print(f'{label}: {shown or "(as configured)"} | valid {st["metric"]} {best["value"]:.4f} | test'
      f'{" (" + str(runs) + " seeds)" if runs > 1 else ""} ' + ", ".join(fmt(m) for m in (report or list(test)[:2])))
PY
}
