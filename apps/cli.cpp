// Parsing of the `rzoo` command line with CLI11, and its help texts. CLI11's own help output is
// switched off: rzoo prints kUsage and command_help(), written for people, instead.
#include "apps/cli.h"

#include <CLI/CLI.hpp>

namespace rzoo::cli {

const char* const kUsage = R"(usage: rzoo COMMAND [ARGS]

commands:
  train CONFIG [--set KEY=VALUE ...]   train one model (config names `model`); writes a run folder
  train --data FILE --model NAME       train on a ratings file (separator, header and columns
                                       inferred and printed) with the defaults; no config needed
  train --resume RUN_DIR               continue an interrupted run from its last checkpoint
  update RUN_DIR --data FILE           warm-start a finished run on new interactions (new users and
                                       items added) into a new run folder beside it
  evaluate RUN_DIR                     re-evaluate a finished run's best model on valid and test
  compare CONFIG [--set KEY=VALUE ...] train every model listed under `compare` on one split; one table
  compare --data FILE --models a,b,c   the same for a ratings file, without a config
  compare --runs RUN_DIR RUN_DIR ...    one table (intervals, paired tests) of finished runs' stored
                                       test results, without training again
  tune CONFIG [--set ...] [--out DIR]  search the hyperparameters of CONFIG's `search` block on
                                       validation (grid, random, halving); resumable
  report DIR [--out FILE]              one self-contained HTML page of charts and tables for a run,
                                       comparison or study folder (DIR/report.html)
  models                               list the built-in models
  data stats CONFIG [--set ...] [--json] load CONFIG's dataset and split; print their statistics
  data fetch NAME [--dir DIR]          download a public dataset (MovieLens 100K, 1M, 10M, 20M, 25M,
                                       latest-small), check its checksum, unpack it, write its config
  data sources                         list what data fetch can download
  export RUN_DIR --out model.pt        write the run's best model as TorchScript (PyTorch/C++ load it)
  recommend --model model.pt --user ID [-k 10]   top-k items for a raw user id (--users-file F: CSV)

options:
  --set KEY=VALUE    override any config key (dotted path, YAML value), e.g. --set train.epochs=5
  --config-dir DIR   folder with defaults.yaml, models/, datasets/ (default: the configs/ folder
                     above CONFIG, else $RZOO_CONFIG_DIR, else the one rzoo was built from)
  --quiet            print nothing but errors and results (the metrics tables; the run folder's
                     train.log still gets everything)
  --show-config      print the whole resolved config (by default: the keys the experiment and
                     --set chose; the whole of it is always saved as the run's config.yaml)
  --allow-empty      train/evaluate/compare even when the valid or test part has no user with a
                     target (an error otherwise): a warning, NaN metrics and exit status 3
  --nproc N          train/evaluate/compare in N local processes (data-parallel, Gloo; as torchrun
                     would start them; train.batch_size is per process); torchrun --no-python rzoo
                     ... works too, across machines; tune: each trial in N processes
  -h, --help         this help (also after a command)
  --version          print the version

Configuration layers: configs/defaults.yaml < configs/models/<model>.yaml <
configs/datasets/<dataset>.yaml < CONFIG < --set. Exit status: 0 success, 1 error, 2 bad usage,
3 success with an empty valid or test part (--allow-empty), 130 interrupted (Ctrl-C, SIGINT),
143 terminated (SIGTERM).
)";

// `rzoo COMMAND --help`.
const char* command_help(const std::string& command) {
  if (command == "train")
    return R"(usage: rzoo train CONFIG [--set KEY=VALUE ...] [--config-dir DIR] [--quiet]
       rzoo train --data FILE --model NAME [--set KEY=VALUE ...]
       rzoo train --resume RUN_DIR [--set threads=N]

Trains the model named by `model` in CONFIG on its dataset and split, validating every
train.valid_every epochs with early stopping on train.early_stop.metric, then evaluates the best
checkpoint on valid and test. Prints the keys the experiment and --set chose (--show-config: the
whole resolved config, each value with the file:line that set it); writes a run folder under
output_dir (config.yaml, train.log, last.pt, best.pt, metrics.json, users.txt, items.txt).
--resume continues an interrupted run from RUN_DIR/last.pt with the run's own config.yaml and
ends with the same numbers as an uninterrupted run (--set threads=N, the only key it takes, changes
the thread count); a run stopped before its first checkpoint (a full disk while it set up) starts
again at epoch 0. Ctrl-C (SIGINT, exit status 130) or SIGTERM (exit status 143) stops after
the current batch; the last complete epoch stays saved. run_name must be one folder name (no '/',
not '.' or '..', no control characters). A config error leaves no run folder. A valid (when
asked for) or test part without users is an error; --allow-empty trains anyway, with a warning
and exit status 3. --pause-at-epoch N (as `rzoo tune` uses it) stops once N epochs are done,
before test: the run folder then holds pause.json (epoch, best epoch, best validation value) and
continues with --resume (with a larger --pause-at-epoch, or without one to finish).
--data FILE trains without a config file: FILE is a delimited ratings file (separator among '::',
tab, comma, semicolon, '|' and spaces; header; user, item, rating and timestamp columns, all
inferred from its first lines and printed) or a MovieLens folder; the model is --model NAME (see
rzoo models) and everything else the defaults, each overridable with --set (e.g. --set
dataset.header=false, --set dataset.columns.rating=2, --set dataset.threshold=4).
--nproc N trains in N processes on this machine (torchrun's variables set for each; `torchrun
--nnodes M --nproc-per-node N --no-python rzoo train CONFIG` across machines): every process builds
the same data and split (checked), each step's batch of N x train.batch_size rows is split across
them and their gradients summed (Gloo all-reduce), so N processes with batch_size B/N train what one
process trains with B; rank 0 logs, validates and writes the run folder; --resume needs the same N.
)";
  if (command == "tune")
    return R"(usage: rzoo tune CONFIG [--set KEY=VALUE ...] [--out DIR] [--force] [--config-dir DIR] [--quiet]

Searches the hyperparameters of CONFIG's `search` block (see configs/defaults.yaml) on the
validation split, never on test: `method: grid` trains every combination of the space's lists,
`random` draws `trials` settings (lists: uniform choice; {uniform: [lo, hi]}, {loguniform: [lo, hi]},
{int: [lo, hi]} ranges), `halving` draws `trials` settings and trains them by successive halving
over epochs (all of them to search.min_epochs, the best 1/eta of them eta times longer, and so on up
to train.epochs). Every key of the space is checked against the schema before any trial runs. Each
trial is an ordinary run folder (trial-NNNN) in the study folder (--out DIR, default
output_dir/run_name, else output_dir/tune-<CONFIG name>), trained by `rzoo train`, search.jobs of them side by side with
the threads split between them. The study folder holds trials.csv (every setting, its validation
value, epochs, time), best.yaml (CONFIG with the chosen setting: `rzoo train best.yaml`),
study.json, and, with search.seeds, the chosen setting re-run with each seed (seed-S; for the
study's own seed a link to the best trial) and the mean and spread of their test metrics (test.md,
test.csv); search.refit: true retrains each of those on train + validation for the epochs
validation chose (refit-S; test.md keeps the validated figures beside them); search.also_eval
evaluates the final runs under other eval.* settings too. "{seed}" in a --set or refit_sets value
is each run's own seed (e.g. model.pretrain.gmf=GMF_STUDY/seed-{seed}). Running the same command again continues
a study (finished trials are kept, an interrupted one resumes from its last.pt); a study folder
made by another config is refused unless --force, which moves it aside (DIR.old-N) first.
search.base: STUDY_DIR fixes that finished study's choices (study.json: chosen) over CONFIG and
--set, for coordinate-wise tuning: this study's space tunes further keys. search.reuse: [STUDY_DIR,
...] (and search.base) copies the finished runs of other studies (trials, seed runs, refits) where
this study would train the very same configuration (reused.json names the source).
Prints one line per finished trial (setting, value, best so far, ETA). --nproc N trains each
trial in N processes (rzoo train --nproc N; train.batch_size is per process).
)";
  if (command == "update")
    return R"(usage: rzoo update RUN_DIR --data FILE [--set KEY=VALUE ...] [--out model.pt]

Updates a finished run with new interactions, without retraining from scratch. FILE is read like
the run's own data (its format, separator and columns: a MovieLens folder's run takes a file of
its ratings layout); its rows are appended to the run's data as training rows (after the run's
split, so validation and test stay the run's own), users and items it introduces are numbered
after the run's. A new run folder beside RUN_DIR (named RUN_DIR-u1, then -u2 for an update of
that) gets the run's config plus
  dataset.append: [..., FILE]   (every update's files, in order)
  train.init_from: RUN_DIR      (the parent: its best.pt starts the model)
  train.replay: R               (each epoch: the new pairs plus R times as many old ones, drawn once)
  train.epochs: E, train.valid_every: E, train.early_stop.patience: 0
                                (E epochs, validated at the end: the run's validation part holds
                                old interactions, and stopping on it stopped the update early)
with R = update.replay and E = update.epochs of the run's config (defaults.yaml: 4 and 20; a
model's YAML may change them: mf takes 5 epochs), chosen on validation replays.
Gradient models continue from the parent's parameters: new users of bpr, mf, gmf, ncfmlp and neumf start from
their fold-in (train.init_new_users), other new rows as the model initialises them; closed-form models
give exactly the model of a refit on all the training pairs: pop, itemknn, userknn and ease
update the parent's fit (counts; the changed k-lists; a Woodbury update of EASE's inverse), the
others refit in full; the log says which. RUN_DIR is only read. --set may change update.*, train.*, eval.*, dataset.append_valid,
seed, threads, device, run_name and output_dir (e.g. --set update.epochs=5 --set update.replay=0.5); the
other dataset.* keys and model.* would change what the update starts from and are refused. --out FILE also exports the updated
model as TorchScript (as rzoo export does). The new run's valid and test figures score the run's
old parts with a model trained on later interactions: not a clean estimate (the README's replay
benchmark measures updates).
)";
  if (command == "evaluate")
    return R"(usage: rzoo evaluate RUN_DIR [--set eval.KEY=VALUE ...]

Rebuilds the run's dataset and split from RUN_DIR/config.yaml (checking that users and items are
unchanged), loads RUN_DIR/best.pt and evaluates it on valid and test; writes RUN_DIR/eval.json.
--set changes evaluation settings only (e.g. --set eval.protocol=full to rank every item after
training under a sampled protocol); the results then go to RUN_DIR/eval-<settings>/. --set threads=N
and --set device=cpu choose where it runs (e.g. a run trained on a GPU, evaluated on a CPU).
)";
  if (command == "compare")
    return R"(usage: rzoo compare CONFIG [--set KEY=VALUE ...] [--config-dir DIR] [--quiet]
       rzoo compare --data FILE --models pop,bpr,ease [--set KEY=VALUE ...]
       rzoo compare --runs [NAME=]RUN_DIR[,RUN_DIR...] ... [--out DIR] [--set compare_stats.KEY=VALUE]

Trains every entry of CONFIG's `compare` list on one dataset and split and prints one table of
test metrics, a row per (K, model). An entry is a model name (pop) or a map of overrides applied after CONFIG
({model: {name: bpr, embedding_size: 32}, train: {lr: 0.01}}). --set applies to every entry.
Writes, in the comparison's folder beside the runs' folders: compare.md (the table with 95%
bootstrap intervals and paired significance tests against compare_stats.baseline), compare.csv
(every number, a row per model and metric), compare.tex (a LaTeX booktabs table) and
compare.json (each run's valid and test results), and report.html (charts: see rzoo report).
--data FILE --models LIST compares the listed models on a ratings file without a config (the
file's layout inferred as for rzoo train --data).
--runs compares runs that have already finished (rzoo train, the trials and seeds of rzoo tune, an
earlier comparison's runs) from the test results they stored, without training anything: RUN_DIR
is a run folder, an evaluation folder inside one (RUN_DIR/eval-..., written by rzoo evaluate
--set eval.KEY=VALUE), or an rzoo tune study folder (the seed runs of its chosen setting;
STUDY/eval-... for that evaluation folder of each of them). The runs must share their data and
split (users.txt, items.txt and the test users with their candidates) and their test protocol;
anything else is refused. NAME=DIR,DIR,... makes one entry of several runs (the seeds of a
setting), as a study does: their per-user values are averaged user by user before the tests.
Labels default to the model's name, else the folder's. The table goes to --out DIR (default:
runs/compare-runs-<time>) with compare.md, .csv, .tex, .json and report.html; --set may change
compare_stats.* (baseline: a label), output_dir, run_name and threads only.
)";
  if (command == "report")
    return R"(usage: rzoo report DIR [--out FILE]

Writes DIR/report.html (or FILE), one page that opens offline (Chart.js is inside it), for:
a run folder: training loss and validation metrics per epoch (history.csv), test metrics against
K, the metrics and config; a comparison folder (rzoo compare writes its report itself): per
metric a bar per model with its 95% bootstrap interval and significance marks against the
baseline, metric@K curves and each model's validation curve; a study folder (rzoo tune): the
objective against each hyperparameter, the trial history, the best trial's validation curve, the
trials and test results. Charts whose inputs are missing (a run without history.csv) are left out
with a note. Prints the path written.
)";
  if (command == "data")
    return R"(usage: rzoo data stats CONFIG [--set KEY=VALUE ...] [--json] [--no-split] [--config-dir DIR]
       rzoo data fetch NAME [--dir DIR] [--sources FILE] [--force]
       rzoo data sources [--sources FILE]

Loads the dataset of CONFIG (reader, cleaning and cache as configured under `dataset`), splits
it, and prints users, items, interactions, density, interactions per user and per item (min,
median, p90, max, mean), the Gini coefficient of item popularity, the time span, ratings, side
features, given negatives, what cleaning dropped and the split's sizes. --json prints the same
as JSON on stdout (without the log). --no-split skips splitting. CONFIG may be a dataset file such as
configs/datasets/ml-100k.yaml.

fetch downloads the public dataset NAME from its publisher's URL (curl, else wget; a progress bar
on a terminal), checks its size and pinned SHA-256 (configs/data-sources.yaml), unpacks it into
the data folder (--dir DIR, else $RZOO_DATA, else ~/.cache/rzoo/data) and writes DIR/NAME.yaml,
a dataset config pointing at it. A download that fails or does not match its checksum is removed:
nothing half-unpacked stays. A second fetch finds the copy and downloads nothing (--force fetches
again). Dataset configs whose path does not exist (such as configs/datasets/ml-100k.yaml, written
for ../shared/data/ml-100k) use the fetched copy of the same folder. $RZOO_DATA_MIRROR replaces
the URLs' address (a local mirror holding the same files); --sources FILE adds entries or changes
fields of the built-in ones (same form as configs/data-sources.yaml). sources lists the entries.
)";
  if (command == "models") return "usage: rzoo models\n\nLists the built-in models with their paper references.\n";
  if (command == "export")
    return R"(usage: rzoo export RUN_DIR --out model.pt

Writes the run's best model as one TorchScript file that torch.jit.load (Python) and
torch::jit::load (C++) load without rzoo. Methods: score(users, items), recommend(users, k) (the
user's known items masked), user_index(raw), item_index(raw), recommend_raw(raw_user, k,
fallback=False). Inside the archive: config.yaml, users.txt, items.txt, metrics.json, rzoo.txt.
The data is rebuilt from RUN_DIR/config.yaml (and must still give the run's users and items).
)";
  if (command == "recommend")
    return R"(usage: rzoo recommend --model model.pt --user RAW_ID [-k 10] [--fallback popular]
       rzoo recommend --model model.pt --users-file FILE [-k 10] [--out recs.csv] [--fallback popular]
       rzoo recommend --model model.pt --history ID,ID,... [-k 10] [--skip-unknown]
       rzoo recommend ... (--user or --history) [--explain [--evidence 3]] [--json]

Prints the top-k items (raw ids, scores, titles when the data had them) that an exported model
recommends to a user, never one the user already interacted with. --users-file reads one raw
user id per line and writes CSV (user,rank,item,score,title,source) to --out or stdout. An unknown
user is an error unless --fallback popular, which recommends the most popular items instead: their
rows have source 'popular' (score: the item's training interactions), the others 'model', and
stderr counts them.
--history ranks for a sequence of raw item ids (the most recent last) that need not belong to any
known user: a new user, a session. The sequential models (sasrec, gru4rec, caser, bert4rec,
markov) read it as a sequence; content, ease, ials, itemknn (ranking mode), mlp, multdae,
multvae, pop, svdpp, bpr, mf and the NCF models fold it in (EASE: the history's rows of B; ItemKNN:
its neighbour similarities; content: the history's profile; iALS: the user half-step of training
against the item factors; the autoencoders and the MLP: one network pass on the history's
multi-hot vector; SVD++: its implicit part, no trained user vector; BPR, MF, GMF, NCF-MLP, NeuMF:
the user vector that best fits the history under the model's own loss, the rest fixed; Pop: the
popular items; a hybrid of such models: its blend of theirs). The history's items are not recommended. An unknown item id is an error naming it unless
--skip-unknown; an empty history is an error.
--explain prints under each recommended item the evidence behind it, strongest first (--evidence
N lines, default 3): ItemKNN the history items' similarities to it, EASE their weights B[j, i],
iALS their shares c h_i^T A^-1 h_j of the score (Hu et al. 2008), content the shared features
(genres, tags, title words) by TF-IDF weight; for these four the weights add up to the score of
the history's fold-in. BPR, MF and GMF list the history items closest to it in item-factor
space (cosine); SASRec and BERT4Rec the last block's attention over the history's positions;
GRU4Rec, Caser and Markov each position's occlusion (the score less the score without it). A
known user is explained from all of the user's known items. --json prints the recommendations
(and evidence) as one JSON document instead of the table.
)";
  return nullptr;
}

namespace {

// Options shared by every command. CLI11 would let a repeated option throw; rzoo takes the last
// one, except --set which collects them all (one KEY=VALUE per --set).
void add_options(CLI::App& app, Args& a, bool& version) {
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_flag("-h,--help", a.help);
  app.add_flag("--version", version);
  app.add_flag("-q,--quiet", a.quiet);
  app.add_option("--set", a.sets)->allow_extra_args(false)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--resume", a.resume);
  app.add_option("--config-dir", a.config_dir);
  app.add_flag("--json", a.json);
  app.add_flag("--no-split", a.no_split);
  app.add_flag("--allow-empty", a.allow_empty);
  app.add_option("-o,--out", a.out);
  app.add_option("--model", a.model);
  app.add_option("--user", a.user);
  app.add_option("--users-file", a.users_file);
  app.add_option("--fallback", a.fallback);
  app.add_option("--history", a.history);
  app.add_flag("--skip-unknown", a.skip_unknown);
  app.add_flag("--explain", a.explain);
  app.add_option("--evidence", a.evidence);
  app.add_flag("--force", a.force);
  app.add_flag("--show-config", a.show_config);
  app.add_option("--pause-at-epoch", a.pause_at_epoch);
  app.add_option("--data", a.data);
  app.add_option("--models", a.models);
  app.add_flag("--runs", a.runs);
  app.add_option("--dir", a.dir);
  app.add_option("--sources", a.sources);
  app.add_option("-k,--k", a.k);
}

// What CLI11 could not place: an unknown option, an unknown command, or an argument too many.
void check_leftovers(const std::vector<std::string>& left, const std::string& command) {
  if (left.empty()) return;
  const std::string& s = left.front();
  if (s.size() > 1 && s[0] == '-') throw Usage("unknown option '" + s + "'");
  if (command.empty()) throw Usage("unknown command '" + s + "'");
  throw Usage(command + ": unexpected argument '" + s + "'");
}

}  // namespace

Args parse(int argc, char** argv) {
  Args a;
  bool version = false;
  CLI::App app("rzoo", "rzoo");
  app.set_help_flag();  // -h/--help is an ordinary flag below: run() prints rzoo's own help
  app.allow_extras();   // leftovers are reported by check_leftovers, in rzoo's words
  app.require_subcommand(0, 1);
  add_options(app, a, version);
  for (const char* name : {"train", "update", "evaluate", "compare", "tune", "report", "models", "data", "export", "recommend", "help"}) {
    CLI::App* sub = app.add_subcommand(name);
    // Options after the command belong to the main app; arguments without a dash are the command's.
    sub->fallthrough()->allow_extras();
    if (std::string(name) != "models") sub->add_option("args", a.positional);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ArgumentMismatch& e) {
    // CLI11 says "--set: 1 required TEXT missing"; rzoo's message names the option the same way.
    const std::string what = e.what();
    throw Usage(what.substr(0, what.find(':')) + " needs a value");
  } catch (const CLI::ParseError& e) {
    throw Usage(e.what());
  }
  for (const CLI::App* sub : app.get_subcommands()) a.command = sub->get_name();
  a.history_given = app.count("--history") > 0;
  check_leftovers(app.remaining(true), a.command);
  if (version) a.command = "version";
  return a;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find("\nException raised from")); }

}  // namespace rzoo::cli
