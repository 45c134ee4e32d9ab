#include "datasets/idmap.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "core/error.h"
#include "datasets/text.h"

namespace rzoo {

namespace {
constexpr int64_t kDenseLimit = int64_t{1} << 24;  // ids below this may use the direct table (64 MB max)
constexpr int64_t kDenseSlack = 4096;              // the direct table's size before any id counts

inline uint64_t hash_int(int64_t v) {
  uint64_t x = static_cast<uint64_t>(v) + 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

bool parse_int(std::string_view s, int64_t& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}
}  // namespace

void IdMap::set_mode(Mode m) {
  if (mode_ == m) return;
  if (mode_ != Mode::Unset) fail("internal error: an id map mixes string and integer ids");
  mode_ = m;
}

void IdMap::reserve(int64_t n) {
  raw_.reserve(static_cast<size_t>(n));
  while (static_cast<int64_t>(slots_.size()) < 2 * n) grow();
}

void IdMap::grow() {
  const size_t cap = slots_.empty() ? 1024 : slots_.size() * 2;
  std::vector<Slot> old(cap, Slot{0, -1});
  old.swap(slots_);
  mask_ = cap - 1;
  for (const Slot& s : old) {
    if (s.index < 0) continue;
    size_t i = s.hash & mask_;
    while (slots_[i].index >= 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

int64_t IdMap::probe(uint64_t h, std::string_view raw) const {
  size_t i = h & mask_;
  for (;;) {
    const Slot& s = slots_[i];
    if (s.index < 0) return static_cast<int64_t>(i);
    if (s.hash == h && raw_[static_cast<size_t>(s.index)] == raw) return static_cast<int64_t>(i);
    i = (i + 1) & mask_;
  }
}

int64_t IdMap::probe_int(uint64_t h, int64_t id) const {
  size_t i = h & mask_;
  for (;;) {
    const Slot& s = slots_[i];
    if (s.index < 0) return static_cast<int64_t>(i);
    if (s.hash == h && int_key_[static_cast<size_t>(s.index)] == id) return static_cast<int64_t>(i);
    i = (i + 1) & mask_;
  }
}

int64_t IdMap::add(std::string_view raw) {
  if (mode_ == Mode::Int) {
    int64_t v;
    if (!parse_int(raw, v)) fail("internal error: '{}' is not an integer id", raw);
    return add_int(v);
  }
  set_mode(Mode::String);
  if (last_ >= 0 && raw_[static_cast<size_t>(last_)] == raw) return last_;
  if (2 * (raw_.size() + 1) > slots_.size()) grow();
  const uint64_t h = hash_bytes(raw.data(), raw.size());
  Slot& s = slots_[static_cast<size_t>(probe(h, raw))];
  if (s.index < 0) {
    s = Slot{h, size()};
    raw_.emplace_back(raw);
  }
  return last_ = s.index;
}

int64_t IdMap::find(std::string_view raw) const {
  if (mode_ == Mode::Int) {
    int64_t v;
    return parse_int(trim(raw), v) ? find_int(v) : -1;
  }
  if (slots_.empty()) return -1;
  const Slot& s = slots_[static_cast<size_t>(probe(hash_bytes(raw.data(), raw.size()), raw))];
  return s.index;
}

int64_t IdMap::add_int(int64_t id) {
  set_mode(Mode::Int);
  if (last_ >= 0 && int_key_[static_cast<size_t>(last_)] == id) return last_;
  if (id >= 0 && static_cast<uint64_t>(id) < dense_.size()) {
    if (const int32_t d = dense_[static_cast<size_t>(id)]) return last_ = d - 1;
  }
  const uint64_t h = hash_int(id);
  if (!slots_.empty()) {
    const Slot& s = slots_[static_cast<size_t>(probe_int(h, id))];
    if (s.index >= 0) return last_ = s.index;
  }
  // A new id. The direct table takes it while the table stays dense enough (at most
  // kDenseSlack + 16 entries per id): a few ids in the millions (hashed or sparse raw ids) must not
  // cost a table the size of the largest id.
  const int64_t index = size();
  if (id >= 0 && id < kDenseLimit && id < kDenseSlack + 16 * (index + 1)) {
    if (static_cast<size_t>(id) >= dense_.size()) {
      const int64_t want = std::min<int64_t>(kDenseLimit, std::max<int64_t>(id + 1, 2 * static_cast<int64_t>(dense_.size())));
      dense_.resize(static_cast<size_t>(std::min<int64_t>(want, kDenseSlack + 32 * (index + 1))), 0);
    }
    dense_[static_cast<size_t>(id)] = static_cast<int32_t>(index + 1);
  } else {
    if (2 * (raw_.size() + 1) > slots_.size()) grow();
    slots_[static_cast<size_t>(probe_int(h, id))] = Slot{h, index};
  }
  int_key_.push_back(id);
  raw_.push_back(std::to_string(id));
  return last_ = index;
}

int64_t IdMap::find_int(int64_t id) const {
  if (mode_ != Mode::Int) return find(std::to_string(id));
  if (id >= 0 && static_cast<uint64_t>(id) < dense_.size()) {
    if (const int32_t d = dense_[static_cast<size_t>(id)]) return d - 1;
  }
  if (slots_.empty()) return -1;
  return slots_[static_cast<size_t>(probe_int(hash_int(id), id))].index;
}

std::vector<int64_t> IdMap::compact(const std::vector<bool>& keep) {
  std::vector<int64_t> new_of_old(raw_.size(), -1);
  std::vector<std::string> raws;
  int64_t n = 0;
  for (size_t i = 0; i < raw_.size(); ++i)
    if (keep[i]) {
      new_of_old[i] = n++;
      raws.push_back(std::move(raw_[i]));
    }
  assign(std::move(raws), mode_ == Mode::Int);
  return new_of_old;
}

void IdMap::assign(std::vector<std::string> raws, bool integer_ids) {
  raw_.clear();
  int_key_.clear();
  slots_.clear();
  dense_.clear();
  mask_ = 0;
  last_ = -1;
  mode_ = Mode::Unset;
  if (integer_ids) {
    for (const auto& r : raws) {
      int64_t v;
      if (!parse_int(r, v)) fail("internal error: '{}' is not an integer id", r);
      add_int(v);
    }
  } else {
    reserve(static_cast<int64_t>(raws.size()));
    for (const auto& r : raws) add(r);
  }
}

}  // namespace rzoo
