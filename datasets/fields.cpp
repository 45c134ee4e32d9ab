// dataset.fields: side features laid out as slots of one shared embedding table (fields.h).
#include "datasets/fields.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "core/strings.h"
#include "datasets/dataset.h"

namespace rzoo {

namespace {

std::string known_fields(const Dataset& d) {
  std::vector<std::string> v;
  for (const auto& f : d.user_info.features) v.push_back("user:" + f.name);
  for (const auto& f : d.item_info.features) v.push_back("item:" + f.name);
  return v.empty() ? "none (the data has no user or item side features)" : join(v);
}

// One field of one side before it is laid out: how many slots it takes and each entity's
// (row within the field, weight) pairs.
struct Pending {
  std::string name, kind;
  int64_t rows = 0, slots = 1;
  std::vector<std::vector<std::pair<int64_t, float>>> of;  // [n_entities]
  std::string note;
};

Pending id_field(const std::string& name, int64_t n, const std::vector<bool>* seen) {
  Pending p{name, "id", n + 1, 1, {}, fmt::format("{} id ({} rows)", name, n)};
  p.of.resize(static_cast<size_t>(n));
  for (int64_t e = 0; e < n; ++e)
    p.of[static_cast<size_t>(e)] = {{1 + e, seen && !(*seen)[static_cast<size_t>(e)] ? 0.0F : 1.0F}};
  return p;
}

Pending feature_field(const std::string& name, const Feature& f, int64_t n, int64_t buckets) {
  Pending p;
  p.name = name;
  p.of.resize(static_cast<size_t>(n));
  if (f.kind == Feature::Kind::Float) {
    // Statistics over the entities that have a value.
    std::vector<float> vals;
    for (int64_t e = 0; e < n && e < f.n(); ++e)
      if (!std::isnan(f.values[static_cast<size_t>(e)])) vals.push_back(f.values[static_cast<size_t>(e)]);
    const auto value = [&](int64_t e) {
      return e < f.n() ? f.values[static_cast<size_t>(e)] : std::numeric_limits<float>::quiet_NaN();
    };
    if (buckets > 0) {
      // Quantile edges: bucket b holds values in [edge[b-1], edge[b]).
      std::sort(vals.begin(), vals.end());
      std::vector<float> edges;
      for (int64_t b = 1; b < buckets && !vals.empty(); ++b)
        edges.push_back(vals[static_cast<size_t>(b * static_cast<int64_t>(vals.size()) / buckets)]);
      p.kind = "float_bucket";
      p.rows = buckets + 1;
      for (int64_t e = 0; e < n; ++e) {
        const float x = value(e);
        const int64_t b = std::isnan(x) ? 0 : 1 + (std::upper_bound(edges.begin(), edges.end(), x) - edges.begin());
        p.of[static_cast<size_t>(e)] = {{b, 1.0F}};
      }
      p.note = fmt::format("{} float, {} quantile buckets", name, buckets);
    } else {
      double mean = 0, var = 0;
      for (float x : vals) mean += x;
      mean = vals.empty() ? 0 : mean / static_cast<double>(vals.size());
      for (float x : vals) var += (x - mean) * (x - mean);
      const double sd = vals.size() > 1 ? std::sqrt(var / static_cast<double>(vals.size() - 1)) : 0.0;
      p.kind = "float";
      p.rows = 2;
      for (int64_t e = 0; e < n; ++e) {
        const float x = value(e);
        if (std::isnan(x)) p.of[static_cast<size_t>(e)] = {{0, 1.0F}};
        else p.of[static_cast<size_t>(e)] = {{1, sd > 0 ? static_cast<float>((x - mean) / sd) : 0.0F}};
      }
      p.note = fmt::format("{} float, standardised (mean {:.4g}, std {:.4g})", name, mean, sd);
    }
    return p;
  }
  p.kind = f.kind == Feature::Kind::Token ? "token" : "token_seq";
  p.rows = static_cast<int64_t>(f.vocab.size()) + 1;
  int64_t longest = 1;
  for (int64_t e = 0; e < n; ++e) {
    auto& s = p.of[static_cast<size_t>(e)];
    const int64_t b = e < f.n() ? f.offsets[static_cast<size_t>(e)] : 0, end = e < f.n() ? f.offsets[static_cast<size_t>(e) + 1] : 0;
    const int64_t m = std::min<int64_t>(end - b, f.kind == Feature::Kind::Token ? 1 : kMaxFieldTokens);
    if (m <= 0) {
      s = {{0, 1.0F}};
      continue;
    }
    for (int64_t k = 0; k < m; ++k) s.emplace_back(1 + f.tokens[static_cast<size_t>(b + k)], 1.0F / static_cast<float>(m));
    longest = std::max(longest, m);
  }
  p.slots = longest;
  p.note = fmt::format("{} {} ({} tokens{})", name, p.kind, f.vocab.size(),
                       p.kind == "token_seq" ? fmt::format(", up to {} per entity, averaged", longest) : "");
  return p;
}

// "user:history": the user's training items as a token sequence over the items (FISM's and
// SVD++'s implicit-feedback user representation, Rendle's FM with implicit indicators), each
// item weighted 1/m. Rows: 0 = no history, 1 + i = item i (a table of its own, not item_id's).
// A user with more than `cap` training items keeps `cap` of them, chosen by a shuffle seeded with
// the user's index, so a rebuild (export, evaluate) gives the same slots.
Pending history_field(const Csr& train, int64_t n_users, int64_t n_items, int64_t cap) {
  Pending p;
  p.name = kHistoryField;
  p.kind = "history";
  p.rows = n_items + 1;
  p.of.resize(static_cast<size_t>(n_users));
  int64_t longest = 1, cut = 0;
  std::vector<int64_t> items;
  for (int64_t u = 0; u < n_users; ++u) {
    auto& s = p.of[static_cast<size_t>(u)];
    items.clear();
    if (u < train.n_rows)
      for (const Csr::Index* q = train.row_begin(u); q != train.row_end(u); ++q)
        if (*q >= 0 && *q < n_items) items.push_back(*q);
    if (items.empty()) {
      s = {{0, 1.0F}};
      continue;
    }
    if (static_cast<int64_t>(items.size()) > cap) {
      // A partial Fisher-Yates with the engine's raw output (std::shuffle's use of it differs
      // between standard libraries; the export's schema check rebuilds these slots).
      std::mt19937_64 rng(0x9E3779B97F4A7C15ULL ^ static_cast<uint64_t>(u));
      for (int64_t k = 0; k < cap; ++k) {
        const auto j = k + static_cast<int64_t>(rng() % static_cast<uint64_t>(static_cast<int64_t>(items.size()) - k));
        std::swap(items[static_cast<size_t>(k)], items[static_cast<size_t>(j)]);
      }
      items.resize(static_cast<size_t>(cap));
      std::sort(items.begin(), items.end());
      ++cut;
    }
    const auto m = static_cast<int64_t>(items.size());
    for (auto i : items) s.emplace_back(1 + i, 1.0F / static_cast<float>(m));
    longest = std::max(longest, m);
  }
  p.slots = longest;
  p.note = fmt::format("user:history history ({} items; the user's training items, up to {} per user, averaged; {} "
                       "user(s) above dataset.history_max keep a seeded sample; a training pair leaves its own item out)",
                       n_items, longest, cut);
  return p;
}

void lay_out(std::vector<Pending>& fields, int64_t n, int64_t& next_row, FieldSide& side, std::vector<std::string>& schema) {
  side.n_entities = n;
  int64_t S = 0;
  for (const auto& p : fields) S += p.slots;
  side.index.assign(static_cast<size_t>(n * S), 0);
  side.weight.assign(static_cast<size_t>(n * S), 0.0F);
  int64_t s0 = 0;
  for (size_t fi = 0; fi < fields.size(); ++fi) {
    const Pending& p = fields[fi];
    side.names.push_back(p.name);
    side.kinds.push_back(p.kind);
    side.rows.push_back(p.rows);
    side.first_row.push_back(next_row);
    for (int64_t k = 0; k < p.slots; ++k) side.slot_field.push_back(static_cast<int64_t>(fi));
    for (int64_t e = 0; e < n; ++e) {
      const auto& s = p.of[static_cast<size_t>(e)];
      for (int64_t k = 0; k < p.slots; ++k) {
        const size_t at = static_cast<size_t>(e * S + s0 + k);
        // Unused slots point at the field's first row with weight 0.
        side.index[at] = next_row + (k < static_cast<int64_t>(s.size()) ? s[static_cast<size_t>(k)].first : 0);
        side.weight[at] = k < static_cast<int64_t>(s.size()) ? s[static_cast<size_t>(k)].second : 0.0F;
      }
    }
    next_row += p.rows;
    s0 += p.slots;
    schema.push_back(p.note);
  }
}

const std::vector<std::string>& known_context() {
  static const std::vector<std::string> k = {"context:hour", "context:weekday", "context:gap"};
  return k;
}

}  // namespace

int64_t context_vocab(const std::string& field) {
  if (field == "context:hour") return 25;
  if (field == "context:weekday") return 8;
  return 33;  // gap: first interaction (0 is missing), then 1 + floor(log2(1 + seconds)) capped at 31
}

std::vector<std::string> context_fields(const Config& cfg) {
  std::vector<std::string> out;
  if (!cfg.has("dataset.fields")) return out;
  for (const auto& w : cfg.get_string_list("dataset.fields")) {
    if (w.rfind("context:", 0) != 0) continue;
    const auto& k = known_context();
    if (std::find(k.begin(), k.end(), w) == k.end())
      cfg.bad("dataset.fields", fmt::format("unknown context field '{}' (known: context:hour, context:weekday, context:gap)", w));
    if (std::find(out.begin(), out.end(), w) != out.end())
      cfg.bad("dataset.fields", fmt::format("field '{}' is declared twice", w));
    out.push_back(w);
  }
  return out;
}

std::vector<int32_t> context_tokens(const Dataset& d, const std::vector<std::string>& fields, const Config& cfg) {
  const size_t n = static_cast<size_t>(d.n_interactions()), C = fields.size();
  std::vector<int32_t> out(n * C, 0);
  if (C == 0) return out;
  if (!d.has_timestamps())
    cfg.bad("dataset.fields", fmt::format("'{}' needs interaction timestamps, and the data has none "
                                          "(dataset.columns.timestamp)", fields[0]));
  // Each user's previous interaction in time (gap).
  std::vector<int64_t> prev(n, kNoTime);
  if (std::find(fields.begin(), fields.end(), "context:gap") != fields.end()) {
    std::vector<int64_t> start;
    std::vector<int64_t> rows = d.rows_by_user(start);
    for (int64_t u = 0; u + 1 < static_cast<int64_t>(start.size()); ++u) {
      auto b = rows.begin() + start[static_cast<size_t>(u)], e = rows.begin() + start[static_cast<size_t>(u) + 1];
      std::stable_sort(b, e, [&](int64_t x, int64_t y) { return d.timestamp[static_cast<size_t>(x)] < d.timestamp[static_cast<size_t>(y)]; });
      for (auto it = b; it != e; ++it)
        if (it != b) prev[static_cast<size_t>(*it)] = d.timestamp[static_cast<size_t>(*(it - 1))];
    }
  }
  enum Kind { Hour, Weekday, Gap };
  std::vector<Kind> kind(C);
  for (size_t c = 0; c < C; ++c) kind[c] = fields[c] == "context:hour" ? Hour : fields[c] == "context:weekday" ? Weekday : Gap;
  for (size_t r = 0; r < n; ++r) {
    const int64_t t = d.timestamp[r];
    if (t == kNoTime) continue;
    const int64_t day = t >= 0 ? t / 86400 : (t - 86399) / 86400;  // floor
    for (size_t c = 0; c < C; ++c) {
      int32_t tok = 0;
      if (kind[c] == Hour) tok = static_cast<int32_t>(1 + (t - day * 86400) / 3600);
      else if (kind[c] == Weekday) tok = static_cast<int32_t>(1 + ((day % 7 + 7) % 7 + 3) % 7);  // 1970-01-01: Thursday
      else if (prev[r] != kNoTime) {
        const double g = static_cast<double>(std::max<int64_t>(0, t - prev[r]));
        tok = static_cast<int32_t>(1 + std::min(31.0, std::floor(std::log2(1.0 + g))));
      }
      out[r * C + c] = tok;
    }
  }
  return out;
}

SeenInTraining seen_in_training(const Csr& train, int64_t n_users, int64_t n_items) {
  SeenInTraining s;
  s.users.assign(static_cast<size_t>(n_users), false);
  s.items.assign(static_cast<size_t>(n_items), false);
  for (int64_t u = 0; u < train.n_rows && u < n_users; ++u) {
    if (train.row_size(u) > 0) s.users[static_cast<size_t>(u)] = true;
    for (const Csr::Index* p = train.row_begin(u); p != train.row_end(u); ++p)
      if (*p >= 0 && *p < n_items) s.items[static_cast<size_t>(*p)] = true;
  }
  return s;
}

FieldLayout build_fields(const Dataset& d, const Config* cfg, bool with_ids, const Csr* train) {
  std::vector<std::string> wanted;
  int64_t buckets = 0;
  if (cfg && cfg->has("dataset.fields")) {
    wanted = cfg->get_string_list("dataset.fields");
    buckets = cfg->get_int("dataset.field_buckets", 0, 1 << 20);
    if (buckets == 1) cfg->bad("dataset.field_buckets", "must be 0 (standardise float fields) or >= 2, got 1");
  }
  // Expand auto / SIDE:* and check each entry.
  std::vector<std::string> names;
  std::set<std::string> seen;
  const auto add = [&](const std::string& n, bool from_wildcard) {
    if (!seen.insert(n).second) {
      if (from_wildcard) return;
      cfg->bad("dataset.fields", fmt::format("field '{}' is declared twice", n));
    }
    names.push_back(n);
  };
  for (const auto& w : wanted) {
    if (w == "auto" || w == "user:*")
      for (const auto& f : d.user_info.features) add("user:" + f.name, true);
    if (w == "auto" || w == "item:*")
      for (const auto& f : d.item_info.features) add("item:" + f.name, true);
    if (w == "auto" || w == "user:*" || w == "item:*" || w.rfind("context:", 0) == 0) continue;
    if (w == kHistoryField) {
      if (d.user_info.find("history"))
        cfg->bad("dataset.fields", "'user:history' is the user's training items, but the data also has a user "
                                   "feature named 'history'; rename that column");
      add(w, false);
      continue;
    }
    const auto colon = w.find(':');
    const std::string side = colon == std::string::npos ? "" : w.substr(0, colon);
    const std::string name = colon == std::string::npos ? "" : w.substr(colon + 1);
    const SideInfo* info = side == "user" ? &d.user_info : side == "item" ? &d.item_info : nullptr;
    if (!info)
      cfg->bad("dataset.fields", fmt::format("'{}' is not SIDE:NAME with SIDE user or item (or auto, user:*, item:*); "
                                             "the fields of this data: {}", w, known_fields(d)));
    if (!info->find(name))
      cfg->bad("dataset.fields", fmt::format("no field '{}' in the data; the fields of this data: {}", w, known_fields(d)));
    add(w, false);
  }
  const SeenInTraining trained = train ? seen_in_training(*train, d.n_users(), d.n_items()) : SeenInTraining{};
  std::vector<Pending> user_fields, item_fields;
  if (with_ids) {
    user_fields.push_back(id_field("user_id", d.n_users(), train ? &trained.users : nullptr));
    item_fields.push_back(id_field("item_id", d.n_items(), train ? &trained.items : nullptr));
  }
  for (const auto& n : names) {
    if (n == kHistoryField) {
      if (!train)
        fail("dataset.fields: '{}' (the user's training items) needs the training split; this model was built "
             "without one",
             n);
      const int64_t cap = cfg->has("dataset.history_max") ? cfg->get_int("dataset.history_max", 1, 1 << 16) : 50;
      user_fields.push_back(history_field(*train, d.n_users(), d.n_items(), cap));
      continue;
    }
    const bool user = n.rfind("user:", 0) == 0;
    const Feature* f = (user ? d.user_info : d.item_info).find(n.substr(5));
    (user ? user_fields : item_fields).push_back(feature_field(n, *f, user ? d.n_users() : d.n_items(), buckets));
  }
  FieldLayout L;
  lay_out(user_fields, d.n_users(), L.table_rows, L.user, L.schema);
  lay_out(item_fields, d.n_items(), L.table_rows, L.item, L.schema);
  if (cfg) {
    const auto ctx = context_fields(*cfg);
    if (!ctx.empty() && (!cfg->has("dataset.label_threshold") || cfg->node("dataset.label_threshold").IsNull()))
      cfg->bad("dataset.fields", fmt::format("'{}': context fields come from labelled rows (set dataset.label_threshold); "
                                             "ranking all items has no interaction to take a context from", ctx[0]));
    for (size_t c = 0; c < ctx.size(); ++c) {
      L.context.names.push_back(ctx[c]);
      L.context.kinds.push_back("context");
      L.context.rows.push_back(context_vocab(ctx[c]));
      L.context.first_row.push_back(L.table_rows);
      L.context.slot_field.push_back(static_cast<int64_t>(c));
      L.table_rows += context_vocab(ctx[c]);
      L.schema.push_back(fmt::format("{} context ({} tokens; from the interaction's timestamp, labelled rows only)",
                                     ctx[c], context_vocab(ctx[c]) - 1));
    }
  }
  return L;
}

}  // namespace rzoo
