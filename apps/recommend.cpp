// `rzoo recommend`: serves an exported model (see trainers/export.h). It loads the TorchScript file
// with torch::jit::load and calls its methods, as any C++ client would: nothing of the training
// code is used.
#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "apps/cli.h"
#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/json.h"
#include "core/table.h"

namespace fs = std::filesystem;

namespace rzoo::cli {
namespace {

// -k (default 10) and --evidence (default 3): a whole number >= 1.
int64_t parse_count(const std::string& text, int64_t fallback, const std::string& flag) {
  if (text.empty()) return fallback;
  int64_t n = 0;
  try {
    size_t used = 0;
    n = std::stoll(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
  } catch (const std::exception&) {
    throw Usage(flag + " takes a whole number >= 1, got '" + text + "'");
  }
  if (n < 1) throw Usage(flag + " takes a whole number >= 1, got '" + text + "'");
  return n;
}

void check_usage(const Args& a) {
  if (a.model.empty()) throw Usage("recommend needs --model FILE (from `rzoo export`)");
  const int given = int(!a.user.empty()) + int(!a.users_file.empty()) + int(a.history_given);
  if (given != 1) throw Usage("recommend needs exactly one of --user RAW_ID, --users-file FILE or --history ID,ID,...");
  if (a.skip_unknown && !a.history_given) throw Usage("--skip-unknown goes with --history");
  if (!a.out.empty() && a.users_file.empty())
    throw Usage("--out goes with --users-file (it writes their CSV); --user and --history print to the terminal");
  if (!a.positional.empty()) throw Usage("recommend takes no positional arguments (use --user or --users-file)");
  if (!a.fallback.empty() && a.fallback != "popular")
    throw Usage("--fallback takes 'popular', got '" + a.fallback + "'");
  if ((a.explain || a.json) && !a.users_file.empty())
    throw Usage("--explain and --json go with --user or --history (--users-file writes CSV)");
  if (!a.evidence.empty() && !a.explain) throw Usage("--evidence goes with --explain");
}

// An exported rzoo model, checked to be one.
struct Exported {
  std::string path;
  torch::jit::Module module;

  // Errors raised inside the TorchScript interpreter come with its traceback: keep the message.
  c10::IValue call(const std::string& method, std::vector<c10::IValue> args) {
    try {
      return module.get_method(method)(std::move(args));
    } catch (const std::exception& e) {
      std::string msg = e.what();
      const auto at = msg.rfind("Error: ");
      if (at != std::string::npos) msg = msg.substr(at + 7);
      fail("{}: {}", path, msg.substr(0, msg.find_last_not_of(" \n") + 1));
    }
  }
};

Exported load_exported(const std::string& path) {
  if (!fs::is_regular_file(path)) fail("{}: no such model file", path);
  Exported x{path, {}};
  try {
    x.module = torch::jit::load(path, torch::kCPU);
  } catch (const c10::Error& e) {
    fail("{}: not a readable TorchScript model (truncated or damaged?): {}", path,
         first_line(e.what_without_backtrace()).substr(0, 300));
  }
  for (const char* method : {"recommend", "user_index"})
    if (!x.module.find_method(method))
      fail("{}: a TorchScript file, but not an rzoo model (no '{}' method)", path, method);
  // The attributes this command reads, checked once against each other, so that a damaged or
  // edited export is named as such instead of failing deep inside with a container's message.
  auto damaged = [&](const std::string& why) {
    fail("{}: the export is damaged or was edited: {} (export the run again with `rzoo export`)", path, why);
  };
  for (const char* name : {"n_items", "n_users", "item_ids", "item_titles", "popularity"})
    if (!x.module.hasattr(name)) damaged(fmt::format("no '{}' attribute", name));
  const c10::IValue n_items = x.module.attr("n_items"), ids = x.module.attr("item_ids"),
                    titles = x.module.attr("item_titles"), pop = x.module.attr("popularity");
  if (!n_items.isInt() || n_items.toInt() < 1) damaged("'n_items' is not a count >= 1");
  if (!ids.isList() || static_cast<int64_t>(ids.toList().size()) != n_items.toInt())
    damaged(fmt::format("'item_ids' does not hold n_items = {} ids", n_items.toInt()));
  if (!titles.isList() || (titles.toList().size() != 0 && titles.toList().size() != ids.toList().size()))
    damaged("'item_titles' does not hold one title per item");
  if (!pop.isTensor() || pop.toTensor().dim() != 1 || pop.toTensor().size(0) != n_items.toInt())
    damaged(fmt::format("'popularity' is not a vector of n_items = {} counts", n_items.toInt()));
  return x;
}

// An item index the export's own code returned, checked before it is used.
size_t checked_item(const Exported& x, int64_t index, int64_t n_items) {
  if (index < 0 || index >= n_items)
    fail("{}: the export returned item index {} outside 0..{} (the file is damaged or was edited; export the run "
         "again)",
         x.path, index, n_items - 1);
  return static_cast<size_t>(index);
}

// --user, or the lines of --users-file.
std::vector<std::string> read_users(const Args& a) {
  if (!a.user.empty()) return {a.user};
  std::ifstream in(a.users_file);
  if (!in) fail("{}: cannot open users file", a.users_file);
  std::vector<std::string> users;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) users.push_back(line);
  }
  if (users.empty()) fail("{}: no user ids (one raw user id per line)", a.users_file);
  return users;
}

// --history: comma-separated raw ids, blanks around them ignored.
std::vector<std::string> split_history(const std::string& text) {
  std::vector<std::string> ids;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    std::string id = text.substr(start, end - start);
    id.erase(0, id.find_first_not_of(" \t"));
    id.erase(id.find_last_not_of(" \t") + 1);
    if (!id.empty()) ids.push_back(id);
    start = end + 1;
  }
  if (ids.empty()) fail("--history: the history is empty: give at least one item id (comma-separated, the most recent last)");
  return ids;
}

// One recommended item, with its evidence when --explain asked for it.
struct Row {
  std::string id, title;
  double score = 0.0;
  std::vector<std::pair<std::string, double>> evidence;  // raw item id or feature name, weight
};

std::string title_of(Exported& x, const c10::List<c10::IValue>& titles, const std::string& item_id) {
  const int64_t n_items = x.module.attr("n_items").toInt();
  const int64_t it = x.call("item_index", {item_id}).toInt();
  if (it < 0) return "";
  const size_t i = checked_item(x, it, n_items);
  return titles.size() > i ? titles.get(i).toStringRef() : "";
}

// --explain: the model's explain method must exist (a clear error naming the model otherwise).
void check_explains(const Args& a, Exported& x) {
  if (!a.explain) return;
  if (!x.module.hasattr("explain_kind") || x.module.attr("explain_kind").toStringRef().empty() ||
      !x.module.find_method("explain"))
    fail("{}: model '{}' does not explain its recommendations (--explain needs bpr, content, ease, gmf, ials, itemknn "
         "or userknn in ranking mode, or mf; or an export made before rzoo explained: export the run again)",
         a.model, x.module.attr("model_name").toStringRef());
}

// The evidence of each row: explain(user, item, n) or explain_history(items, item, n).
void add_evidence(const Args& a, Exported& x, std::vector<Row>& rows, const std::string& user,
                  const c10::List<std::string>* history) {
  const int64_t n = parse_count(a.evidence, 3, "--evidence");
  for (Row& r : rows) {
    const auto out = history ? x.call("explain_history", {*history, r.id, n, a.skip_unknown}).toTuple()
                             : x.call("explain", {user, r.id, n}).toTuple();
    const auto ids = out->elements()[0].toList(), w = out->elements()[1].toList();
    for (size_t j = 0; j < ids.size() && j < w.size(); ++j) r.evidence.emplace_back(ids.get(j).toStringRef(), w.get(j).toDouble());
  }
}

// The rows as the terminal table (evidence indented under its item) or, with --json, one document.
void print_rows(const Args& a, Exported& x, const std::string& header, Json subject, const std::vector<Row>& rows,
                const std::string& source) {
  const auto titles = x.module.attr("item_titles").toList();
  const std::string kind = a.explain ? x.module.attr("explain_kind").toStringRef() : "";
  if (a.json) {
    Json doc = Json::object();
    doc["model"] = x.module.attr("model_name").toStringRef();
    for (auto& [key, value] : subject.items()) doc[key] = value;
    doc["source"] = source;
    if (a.explain) doc["evidence_kind"] = kind;
    Json list = Json::array();
    for (size_t j = 0; j < rows.size(); ++j) {
      Json r = {{"rank", j + 1}, {"item", rows[j].id}, {"title", rows[j].title}, {"score", json_number(rows[j].score)}};
      if (a.explain) {
        Json ev = Json::array();
        for (const auto& [id, w] : rows[j].evidence) {
          Json e = {{kind == "items" ? "item" : kind == "users" ? "user" : "feature", id}};
          if (kind == "items") e["title"] = title_of(x, titles, id);
          e["weight"] = json_number(w);
          ev.push_back(std::move(e));
        }
        r["evidence"] = std::move(ev);
      }
      list.push_back(std::move(r));
    }
    doc["recommendations"] = std::move(list);
    std::cout << json_dump(doc) << "\n";
    return;
  }
  std::cout << header;
  for (size_t j = 0; j < rows.size(); ++j) {
    std::cout << fmt::format("{:>4}  {:<12} {:>10.4f}  {}\n", j + 1, rows[j].id, rows[j].score, rows[j].title);
    for (const auto& [id, w] : rows[j].evidence) {
      if (kind == "items") std::cout << fmt::format("        {:>+9.4f}  {:<12} {}\n", w, id, title_of(x, titles, id));
      else if (kind == "users") std::cout << fmt::format("        {:>+9.4f}  user {}\n", w, id);
      else std::cout << fmt::format("        {:>+9.4f}  {}\n", w, id);
    }
    if (a.explain && rows[j].evidence.empty() && source == "model")
      std::cout << (kind == "users" ? "        (no neighbour has this item)\n" : "        (no evidence among the history's items)\n");
  }
}

int recommend_history(const Args& a, Exported& x, int64_t k) {
  if (!x.module.find_method("recommend_history"))
    fail("{}: model '{}' ranks from known users only, not from a history of items (--history needs a model that "
         "folds in a new user: bpr, content, ease, gmf, hybrid, ials, itemknn, mf, mlp, multdae, multvae, ncfmlp, neumf, pop, "
         "svdpp, userknn; or a sequential one: "
         "sasrec, gru4rec, caser, bert4rec, markov)",
         a.model, x.module.attr("model_name").toStringRef());
  const std::vector<std::string> hist = split_history(a.history);
  const auto item_ids = x.module.attr("item_ids").toList();
  const auto titles = x.module.attr("item_titles").toList();
  std::vector<std::string> unknown;
  for (const auto& id : hist)
    if (x.call("item_index", {id}).toInt() < 0) unknown.push_back(id);
  if (!unknown.empty() && !a.skip_unknown)
    fail("--history: unknown item id '{}'{} (the model knows {} items); --skip-unknown skips unknown ids", unknown[0],
         unknown.size() > 1 ? fmt::format(" and {} more", unknown.size() - 1) : "", item_ids.size());
  if (unknown.size() == hist.size()) fail("--history: every item id is unknown ({}), nothing to rank from", hist.size());
  c10::List<std::string> list;
  for (const auto& id : hist) list.push_back(id);
  check_explains(a, x);
  const auto out = x.call("recommend_history", {list, k, a.skip_unknown}).toTuple();
  const auto ids = out->elements()[0].toList(), scores = out->elements()[1].toList();
  const int64_t n_top = std::min<int64_t>(k, static_cast<int64_t>(item_ids.size()));  // never "top 10^12"
  std::vector<Row> rows;
  for (size_t j = 0; j < ids.size(); ++j) {
    Row r;
    r.id = ids.get(j).toStringRef();
    const size_t it = checked_item(x, x.call("item_index", {r.id}).toInt(), static_cast<int64_t>(item_ids.size()));
    r.title = titles.size() > it ? titles.get(it).toStringRef() : "";
    r.score = scores.get(j).toDouble();
    rows.push_back(std::move(r));
  }
  if (a.explain) add_evidence(a, x, rows, "", &list);
  Json subject = Json::object();
  Json known = Json::array();
  for (const auto& id : hist)
    if (std::find(unknown.begin(), unknown.end(), id) == unknown.end()) known.push_back(id);
  subject["history"] = std::move(known);
  if (!unknown.empty()) subject["unknown_skipped"] = unknown;
  print_rows(a, x,
             fmt::format("top {} after a history of {} items{}:\n", n_top, hist.size() - unknown.size(),
                         unknown.empty() ? "" : fmt::format(" ({} unknown skipped)", unknown.size())),
             std::move(subject), rows, "model");
  return 0;
}

}  // namespace

int recommend(const Args& a) {
  check_usage(a);
  const int64_t k = parse_count(a.k, 10, "-k");
  if (!a.out.empty()) check_output_path(a.out, "recommend --out");  // before any work
  Exported x = load_exported(a.model);
  if (a.history_given) return recommend_history(a, x, k);
  const auto item_ids = x.module.attr("item_ids").toList();
  const auto titles = x.module.attr("item_titles").toList();
  const bool fallback = a.fallback == "popular";
  check_explains(a, x);
  const std::vector<std::string> users = read_users(a);
  // Every user first: an unknown one stops before anything is written.
  std::vector<int64_t> index(users.size());
  for (size_t i = 0; i < users.size(); ++i) {
    index[i] = x.call("user_index", {users[i]}).toInt();
    if (index[i] < 0 && !fallback)
      fail("{}unknown user '{}': the model knows {} users (use --fallback popular to recommend the most popular items)",
           a.users_file.empty() ? "" : fmt::format("{}:{}: ", a.users_file, i + 1), users[i],
           x.module.attr("n_users").toInt());
  }
  const at::Tensor pop = x.module.attr("popularity").toTensor();
  const int64_t n_items = x.module.attr("n_items").toInt();
  const bool csv_out = !a.users_file.empty();
  const int64_t n_top = std::min(k, n_items);  // what a list can hold: never "top 10^12"
  // source: `model` (ranked by the model) or `popular` (--fallback popular for an unknown user:
  // the score is then the item's count of training interactions, not a model score).
  std::string csv = "user,rank,item,score,title,source\n";
  int64_t fallback_users = 0, fallback_rows = 0;
  for (size_t i = 0; i < users.size(); ++i) {
    at::Tensor values, items;
    if (index[i] >= 0) {
      const auto out = x.call("recommend", {torch::tensor({index[i]}, torch::kLong), k}).toTuple();
      values = out->elements()[0].toTensor()[0];
      items = out->elements()[1].toTensor()[0];
    } else {
      std::tie(values, items) = torch::topk(pop, n_top);
      ++fallback_users;
    }
    const char* source = index[i] >= 0 ? "model" : "popular";
    std::vector<Row> rows;
    for (int64_t j = 0; j < items.size(0); ++j) {
      const float v = values[j].item<float>();
      if (std::isinf(v) && v < 0) break;  // only already-known items are left
      const size_t it = checked_item(x, items[j].item<int64_t>(), n_items);
      Row r;
      r.id = item_ids.get(it).toStringRef();
      r.title = titles.size() > it ? titles.get(it).toStringRef() : "";
      r.score = v;
      if (csv_out)
        csv += fmt::format("{},{},{},{:.6g},{},{}\n", csv_field(users[i]), rows.size() + 1, csv_field(r.id), v,
                           csv_field(r.title), source);
      rows.push_back(std::move(r));
      if (index[i] < 0) ++fallback_rows;
    }
    if (csv_out) continue;
    // An unknown user served by --fallback popular has no history to explain from.
    if (a.explain && index[i] >= 0) add_evidence(a, x, rows, users[i], nullptr);
    print_rows(a, x,
               fmt::format("top {} for user {}{}:\n", n_top, users[i], index[i] < 0 ? " (unknown: most popular items)" : ""),
               Json{{"user", users[i]}}, rows, source);
  }
  // Fallback rows are counted where they cannot be missed (stderr, even with the CSV on stdout).
  if (csv_out && fallback_users > 0 && !a.quiet)
    std::cerr << fmt::format("{} of {} users unknown to the model: {} rows served by --fallback popular (source "
                             "'popular', score = training interactions of the item)\n",
                             fallback_users, users.size(), fallback_rows);
  if (!csv_out) return 0;
  if (a.out.empty()) {
    std::cout << csv;
  } else {
    write_file_atomic(a.out, csv);
    if (!a.quiet)
      std::cerr << fmt::format("wrote {} recommendations for {} users to {}\n",
                               std::count(csv.begin(), csv.end(), '\n') - 1, users.size(), a.out);
  }
  return 0;
}

}  // namespace rzoo::cli
