// Raw id <-> contiguous index, in order of first appearance (deterministic for a given file).
//
// Built for parsing at memory speed: string ids live in one open-addressing table keyed by a
// 64-bit hash (no allocation per lookup), integer ids in a direct table while they are small and
// dense (the table holds at most 4096 + 32 entries per id; sparse ids such as hashes go to the hash table),
// and the last id looked up is remembered (ratings files are usually grouped by user).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rzoo {

class IdMap {
 public:
  int64_t size() const { return static_cast<int64_t>(raw_.size()); }
  int64_t add(std::string_view raw);         // index of `raw`, added if new
  int64_t find(std::string_view raw) const;  // -1 if absent
  // Integer ids (formats whose ids are numbers): 7, "7" and "007" are one id, written "7".
  int64_t add_int(int64_t id);
  int64_t find_int(int64_t id) const;
  bool integer_ids() const { return mode_ == Mode::Int; }

  const std::string& raw(int64_t index) const { return raw_.at(static_cast<size_t>(index)); }
  const std::vector<std::string>& raws() const { return raw_; }
  void reserve(int64_t n);
  // Keeps the ids with keep[i] true, in their order; returns new index of each old (-1 dropped).
  std::vector<int64_t> compact(const std::vector<bool>& keep);
  // Rebuilds from a list of raw ids (cache loading).
  void assign(std::vector<std::string> raws, bool integer_ids);

 private:
  enum class Mode : uint8_t { Unset, String, Int };
  struct Slot {
    uint64_t hash;
    int64_t index;  // -1 = empty
  };
  void set_mode(Mode m);
  void grow();
  int64_t probe(uint64_t h, std::string_view raw) const;  // slot position
  int64_t probe_int(uint64_t h, int64_t id) const;

  Mode mode_ = Mode::Unset;
  std::vector<std::string> raw_;
  std::vector<int64_t> int_key_;  // Int mode: the id of each index
  std::vector<Slot> slots_;
  uint64_t mask_ = 0;
  std::vector<int32_t> dense_;    // Int mode: index + 1 of small ids (0 = absent)
  mutable int64_t last_ = -1;     // index of the last lookup
};

}  // namespace rzoo
