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
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/table.h"

namespace fs = std::filesystem;

namespace rzoo::cli {
namespace {

// -k: a whole number >= 1 (default 10).
int64_t parse_k(const std::string& text) {
  if (text.empty()) return 10;
  int64_t k = 0;
  try {
    size_t used = 0;
    k = std::stoll(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
  } catch (const std::exception&) {
    throw Usage("-k takes a whole number >= 1, got '" + text + "'");
  }
  if (k < 1) throw Usage("-k takes a whole number >= 1, got '" + text + "'");
  return k;
}

void check_usage(const Args& a) {
  if (a.model.empty()) throw Usage("recommend needs --model FILE (from `rzoo export`)");
  if (a.user.empty() == a.users_file.empty()) throw Usage("recommend needs either --user RAW_ID or --users-file FILE");
  if (!a.positional.empty()) throw Usage("recommend takes no positional arguments (use --user or --users-file)");
  if (!a.fallback.empty() && a.fallback != "popular")
    throw Usage("--fallback takes 'popular', got '" + a.fallback + "'");
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
  return x;
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

}  // namespace

int recommend(const Args& a) {
  check_usage(a);
  const int64_t k = parse_k(a.k);
  Exported x = load_exported(a.model);
  const auto item_ids = x.module.attr("item_ids").toList();
  const auto titles = x.module.attr("item_titles").toList();
  const bool fallback = a.fallback == "popular";
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
  std::string csv = "user,rank,item,score,title\n";
  for (size_t i = 0; i < users.size(); ++i) {
    at::Tensor values, items;
    if (index[i] >= 0) {
      const auto out = x.call("recommend", {torch::tensor({index[i]}, torch::kLong), k}).toTuple();
      values = out->elements()[0].toTensor()[0];
      items = out->elements()[1].toTensor()[0];
    } else {
      std::tie(values, items) = torch::topk(pop, std::min(k, n_items));
    }
    if (!csv_out)
      std::cout << fmt::format("top {} for user {}{}:\n", k, users[i],
                               index[i] < 0 ? " (unknown: most popular items)" : "");
    int64_t rank = 0;
    for (int64_t j = 0; j < items.size(0); ++j) {
      const float v = values[j].item<float>();
      if (std::isinf(v) && v < 0) break;  // only already-known items are left
      const auto it = static_cast<size_t>(items[j].item<int64_t>());
      const std::string id = item_ids.get(it).toStringRef();
      const std::string title = titles.size() > it ? titles.get(it).toStringRef() : "";
      ++rank;
      if (!csv_out) std::cout << fmt::format("{:>4}  {:<12} {:>10.4f}  {}\n", rank, id, v, title);
      else csv += fmt::format("{},{},{},{:.6g},{}\n", csv_field(users[i]), rank, csv_field(id), v, csv_field(title));
    }
  }
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
