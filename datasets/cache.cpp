// Binary cache of parsed, mapped and cleaned data. A cache file is named by a hash of the
// reader and cleaning options (every `dataset` key except the split and the cache settings)
// and records each source file with its size, times, inode and content checksum.
//
// When is it used? Every source must still exist (and every probed-absent file still be absent)
// with the same content. Content is compared by checksum unless the file's stat fingerprint
// (device, inode, size, mtime and ctime in ns) is unchanged since the cache was written: the
// kernel sets ctime on every write or attribute change and it cannot be set back by a user, so
// an unchanged fingerprint means unchanged content. Files changed within 2 s before the cache
// was written are always re-checksummed (the same "racy" rule as git's index).
// `dataset.cache.verify: checksum` always compares content.
//
// Is the cache file itself intact? It ends with a CRC32C of every byte before it (the header, the
// sources, every array, the padding), verified on every load: a damaged file (a flipped bit, a
// truncation) is never used, it is rebuilt, with a note in the data report. It is written through
// core/atomic_file (a temporary `<file>.tmp<pid>`, fsynced, renamed); temporary files of killed
// writers (their process gone) are removed when the cache folder is next written.
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fmt/core.h>
#include <yaml-cpp/yaml.h>

#include "core/atomic_file.h"
#include "core/config.h"
#include "core/crc32c.h"
#include "core/error.h"
#include "datasets/readers.h"
#include "datasets/text.h"

namespace fs = std::filesystem;

namespace rzoo {

namespace {

constexpr char kMagic[8] = {'R', 'Z', 'O', 'O', 'D', 'S', '0', '4'};  // 04: negatives as mapped int32 columns
// Earlier formats (no checksum): rebuilt.
constexpr char kOldMagic[7] = {'R', 'Z', 'O', 'O', 'D', 'S', '0'};
constexpr uint64_t kEnd = 0x21444E45ULL;  // "END!"
// The interaction arrays start at multiples of this in the file, so that their views in the
// mapped file are aligned for their element types (and for SIMD loads).
constexpr uint64_t kAlign = 64;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Streams the cache file through the atomic writer, with the CRC32C of everything written.
class Out {
 public:
  explicit Out(AtomicFile& o) : o_(o) {}
  void raw(const void* p, size_t n) {
    if (n == 0) return;  // p may be null (an empty vector's data())
    o_.write(p, n);
    crc_ = crc32c(crc_, p, n);
    at_ += n;
  }
  // The checksum of everything so far, written last (not itself checksummed).
  void checksum() {
    const uint64_t c = crc_;
    o_.write(&c, 8);
  }
  void align() {
    static const char zeros[kAlign] = {};
    raw(zeros, (kAlign - at_ % kAlign) % kAlign);
  }
  void u64(uint64_t v) { raw(&v, 8); }
  void i64(int64_t v) { raw(&v, 8); }
  void str(const std::string& s) { u64(s.size()); raw(s.data(), s.size()); }
  template <class T> void vec(const std::vector<T>& v) { u64(v.size()); raw(v.data(), v.size() * sizeof(T)); }
  void strs(const std::vector<std::string>& v) {
    u64(v.size());
    for (const auto& s : v) str(s);
  }
 private:
  AtomicFile& o_;
  uint64_t at_ = 0;
  uint32_t crc_ = 0;
};

// Reads a cache file mapped into memory: small values are copied out, the interaction arrays
// become views of the mapping (Column::view).
class In {
 public:
  In(const char* base, uint64_t size) : base_(base), size_(size) {}
  void raw(void* p, size_t n) {
    if (n > left()) throw std::runtime_error("truncated");
    if (n == 0) return;  // p may be null (an empty vector's data()): no memcpy from or to it
    std::memcpy(p, base_ + at_, n);
    at_ += n;
  }
  uint64_t u64() { uint64_t v; raw(&v, 8); return v; }
  int64_t i64() { int64_t v; raw(&v, 8); return v; }
  uint64_t left() const { return size_ - at_; }
  uint64_t at() const { return at_; }
  void skip(uint64_t n) {
    if (n > left()) throw std::runtime_error("truncated");
    at_ += n;
  }
  void align() { skip((kAlign - at_ % kAlign) % kAlign); }
  uint64_t count(size_t elem) {
    const uint64_t n = u64();
    if (elem > 0 && n > left() / elem) throw std::runtime_error("bad length");
    return n;
  }
  std::string str() { std::string s(count(1), '\0'); raw(s.data(), s.size()); return s; }
  template <class T> void vec(std::vector<T>& v) { v.resize(count(sizeof(T))); raw(v.data(), v.size() * sizeof(T)); }
  std::vector<std::string> strs() {
    std::vector<std::string> v(count(8));
    for (auto& s : v) s = str();
    return v;
  }
  // n values of T at the next aligned offset, as a view kept alive by `keep`.
  template <class T> Column<T> column(uint64_t n, const std::shared_ptr<const void>& keep) {
    align();
    if (n > left() / sizeof(T)) throw std::runtime_error("truncated");
    const auto* p = reinterpret_cast<const T*>(base_ + at_);
    at_ += n * sizeof(T);
    if (n == 0) return {};
    return Column<T>::view(keep, p, n);
  }
 private:
  const char* base_;
  uint64_t size_, at_ = 0;
};

void put_side(Out& o, const SideInfo& s) {
  o.strs(s.title);
  o.u64(s.features.size());
  for (const auto& f : s.features) {
    o.str(f.name);
    o.u64(static_cast<uint64_t>(f.kind));
    o.strs(f.vocab);
    o.vec(f.offsets);
    o.vec(f.tokens);
    o.vec(f.values);
  }
}

void get_side(In& in, SideInfo& s) {
  s.title = in.strs();
  s.features.resize(in.count(8));
  for (auto& f : s.features) {
    f.name = in.str();
    const uint64_t k = in.u64();
    if (k > 2) throw std::runtime_error("bad feature kind");
    f.kind = static_cast<Feature::Kind>(k);
    f.vocab = in.strs();
    in.vec(f.offsets);
    in.vec(f.tokens);
    in.vec(f.values);
  }
}

std::string default_cache_dir() {
  if (const char* e = std::getenv("RZOO_CACHE_DIR"); e && *e) return e;
  if (const char* e = std::getenv("XDG_CACHE_HOME"); e && *e) return std::string(e) + "/rzoo";
  if (const char* e = std::getenv("HOME"); e && *e) return std::string(e) + "/.cache/rzoo";
  return ".rzoo-cache";
}

}  // namespace

SourceFile source_file(const std::string& path, bool expected_to_exist) {
  SourceFile f;
  f.path = path;
  struct stat st {};
  f.exists = expected_to_exist && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  if (!f.exists) return f;
  f.dev = static_cast<uint64_t>(st.st_dev);
  f.ino = static_cast<uint64_t>(st.st_ino);
  f.size = static_cast<uint64_t>(st.st_size);
  f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  f.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000LL + st.st_ctim.tv_nsec;
  return f;
}

std::string cache_key_text(const Config& cfg) {
  YAML::Node ds = YAML::Clone(cfg.node("dataset"));
  ds.remove("name");
  ds.remove("cache");
  ds.remove("history_max");  // read by the models' user:history field, not by loading
  // The split is not cached, except what decides which files are read (a given split).
  const bool given = cfg.get_string("dataset.split.method") == "given";
  YAML::Node split = YAML::Clone(cfg.node("dataset.split"));
  ds.remove("split");
  if (given)
    for (const char* k : {"train_path", "valid_path", "test_path"}) ds[std::string("split_") + k] = split[k];
  ds["split_given"] = given;
  YAML::Emitter e;
  e.SetMapFormat(YAML::Flow);
  e << ds;
  return fmt::format("rzoo-dataset-cache 1\n{}", e.c_str());
}

std::string cache_file(const Config& cfg) {
  if (!cfg.get_bool("dataset.cache.enabled")) return "";
  if (cfg.get_string("dataset.format") == "synthetic") return "";  // generating is cheaper than reading
  std::string dir = cfg.get_string("dataset.cache.dir");
  if (dir.empty()) dir = default_cache_dir();
  std::string name = cfg.get_string("dataset.name");
  for (auto& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  const std::string key = cache_key_text(cfg);
  return (fs::path(dir) / fmt::format("{}-{:016x}.rzc", name.empty() ? "data" : name, hash_bytes(key.data(), key.size()))).string();
}

namespace {

// The cache file mapped read-only, unmapped when the last view of it goes; null (and `why`) when
// it cannot be. The interaction arrays are used in place (see column.h). The cache file is only
// ever replaced by rename, never rewritten, so the mapping stays valid and unchanged even when
// another run refreshes the cache meanwhile.
std::shared_ptr<const void> map_file(const std::string& file, uint64_t& size, std::string& why) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || st.st_size < 16) {
    if (fd >= 0) ::close(fd);
    why = "cache file not readable";
    return nullptr;
  }
  size = static_cast<uint64_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file
  if (map == MAP_FAILED) {
    why = "cache file cannot be mapped";
    return nullptr;
  }
  const uint64_t n = size;
  return std::shared_ptr<const void>(map, [n](const void* p) { ::munmap(const_cast<void*>(p), n); });
}

// The recorded sources, each checked against the file now; false (and `why`) when one changed.
bool read_sources(In& r, int64_t written, bool verify_content, Dataset& d, std::string& why) {
  const uint64_t ns = r.count(8);
  for (uint64_t k = 0; k < ns; ++k) {
    SourceFile s;
    s.path = r.str();
    s.exists = r.u64() != 0;
    s.dev = r.u64(), s.ino = r.u64(), s.size = r.u64(), s.mtime_ns = r.i64(), s.ctime_ns = r.i64();
    const uint64_t checksum = r.u64();
    const SourceFile now = source_file(s.path);
    const bool exists = now.exists;
    if (exists != s.exists) {
      why = fmt::format("{} {} since the cache was written", s.path, exists ? "appeared" : "disappeared");
      return false;
    }
    if (exists) {
      const bool racy = now.ctime_ns >= written - 2000000000LL || now.mtime_ns >= written - 2000000000LL;
      if (verify_content || racy || !now.same_stat(s)) {
        if (now.size != s.size || file_checksum(s.path) != checksum) {
          why = fmt::format("{} changed since the cache was written", s.path);
          return false;
        }
      }
    }
    d.sources.push_back(s);
  }
  return true;
}

// Everything after the sources, up to the end marker.
void read_contents(In& r, const std::shared_ptr<const void>& keep, Dataset& d) {
  std::vector<std::string> uraw = r.strs();
  const bool uint = r.u64() != 0;
  std::vector<std::string> iraw = r.strs();
  const bool iint = r.u64() != 0;
  d.users.assign(std::move(uraw), uint);
  d.items.assign(std::move(iraw), iint);
  {
    const uint64_t n = r.u64(), nr = r.u64(), nt = r.u64(), np = r.u64();
    if (n > r.left() / 8 || nr > n || nt > n || np > n) throw std::runtime_error("bad array lengths");
    d.user = r.column<int32_t>(n, keep);
    d.item = r.column<int32_t>(n, keep);
    d.rating = r.column<float>(nr, keep);
    d.timestamp = r.column<int64_t>(nt, keep);
    d.part = r.column<int8_t>(np, keep);
  }
  {
    const uint64_t nn = r.u64();
    if (nn > r.left() / 8) throw std::runtime_error("bad negatives length");
    d.neg_user = r.column<int32_t>(nn, keep);
    d.neg_item = r.column<int32_t>(nn, keep);
  }
  get_side(r, d.user_info);
  get_side(r, d.item_info);
  d.report.rows_read = r.i64();
  const uint64_t nd = r.count(16);
  for (uint64_t k = 0; k < nd; ++k) {
    std::string why_dropped = r.str();
    d.report.drop(std::move(why_dropped), r.i64());
  }
  d.report.notes = r.strs();
}

// Consistency of the interaction arrays and negatives: every index in range; throws when not.
void check_interactions(const Dataset& d) {
  const size_t n = d.user.size();
  if (d.item.size() != n || (!d.rating.empty() && d.rating.size() != n) || (!d.timestamp.empty() && d.timestamp.size() != n) ||
      (!d.part.empty() && d.part.size() != n) || d.neg_user.size() != d.neg_item.size())
    throw std::runtime_error("inconsistent lengths");
  {
    // Through const references: mutable access would copy the views (column.h). Unsigned
    // comparison also catches negatives; the loop has no branch, so it vectorises, and the
    // two arrays are checked by two threads.
    const Column<int32_t>&u = d.user, &i = d.item;
    auto in_range = [](const int32_t* p, size_t len, int64_t hi) {
      const auto lim = static_cast<uint32_t>(hi);
      uint32_t bad = 0;
      for (size_t k = 0; k < len; ++k) bad |= static_cast<uint32_t>(static_cast<uint32_t>(p[k]) >= lim);
      return bad == 0;
    };
    bool users_ok = true;
    std::thread t([&] { users_ok = in_range(u.data(), n, d.n_users()); });
    const bool items_ok = in_range(i.data(), n, d.n_items());
    t.join();
    if (!users_ok || !items_ok) throw std::runtime_error("index out of range");
  }
  for (size_t k = 0; k < d.neg_user.size(); ++k)
    if (d.neg_user[k] < 0 || d.neg_user[k] >= d.n_users() || d.neg_item[k] < 0 || d.neg_item[k] >= d.n_items())
      throw std::runtime_error("negative out of range");
  for (int8_t p : std::as_const(d.part))
    if (p < 0 || p > 2) throw std::runtime_error("bad split part");
}

// Consistency of the side tables; throws when not.
void check_side_info(const Dataset& d) {
  for (const auto* side : {&d.user_info, &d.item_info}) {
    const int64_t ne = side == &d.user_info ? d.n_users() : d.n_items();
    if (!side->title.empty() && static_cast<int64_t>(side->title.size()) != ne) throw std::runtime_error("bad titles");
    for (const auto& f : side->features) {
      if (f.n() != ne) throw std::runtime_error("bad feature size");
      if (f.kind == Feature::Kind::Float) continue;
      if (f.offsets.front() != 0 || f.offsets.back() != static_cast<int64_t>(f.tokens.size()) ||
          !std::is_sorted(f.offsets.begin(), f.offsets.end()))
        throw std::runtime_error("bad feature offsets");
      for (int32_t t : f.tokens)
        if (t < 0 || static_cast<size_t>(t) >= f.vocab.size()) throw std::runtime_error("bad token");
    }
  }
}

}  // namespace

std::optional<Dataset> cache_load(const std::string& file, const std::string& key, bool verify_content, std::string& why) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) {
    why = "no cache file";
    return std::nullopt;
  }
  uint64_t size = 0;
  const std::shared_ptr<const void> keep = map_file(file, size, why);
  if (!keep) return std::nullopt;
  const auto* base = static_cast<const char*>(keep.get());
  if (std::memcmp(base, kMagic, 8) != 0) {
    why = std::memcmp(base, kOldMagic, 7) == 0 ? "cache file of an earlier rzoo format" : "not an rzoo cache file";
    return std::nullopt;
  }
  // The checksum over everything before it, before anything of the file is trusted.
  uint64_t stored = 0;
  std::memcpy(&stored, base + size - 8, 8);
  if (stored != crc32c(0, base, size - 8)) {
    why = "cache file is damaged (checksum mismatch)";
    return std::nullopt;
  }
  In r(base, size - 8);
  try {
    r.skip(8);
    if (r.str() != key) { why = "cache of other options"; return std::nullopt; }
    const int64_t written = r.i64();
    Dataset d;
    if (!read_sources(r, written, verify_content, d, why)) return std::nullopt;
    read_contents(r, keep, d);
    if (r.u64() != kEnd || r.left() != 0) { why = "cache file is damaged"; return std::nullopt; }
    check_interactions(d);
    check_side_info(d);
    // The checksum and the checks above read every page of the file; what was copied out
    // (names, side tables) is not read here again, and the columns (interactions, negatives)
    // are read again by the split. Letting the pages go keeps them out of the run's resident
    // memory (they stay in the page cache; a page read later is mapped again): 19 MB of the NCF
    // ML-1M cache.
    ::madvise(const_cast<void*>(keep.get()), size, MADV_DONTNEED);
    return d;
  } catch (const std::exception& e) {
    why = fmt::format("cache file is damaged ({})", e.what());
    return std::nullopt;
  }
}

namespace {
template <class T>
void release_view_pages(const Column<T>& c) {
  if (!c.is_view() || c.empty()) return;
  // Whole pages around the values: the mapping starts on a page and covers the file's last
  // page, so the rounded range stays inside it.
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto lo = reinterpret_cast<uintptr_t>(c.data()) & ~(page - 1);
  const auto hi = (reinterpret_cast<uintptr_t>(c.data() + c.size()) + page - 1) & ~(page - 1);
  ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}
}  // namespace

void Dataset::release_mapped_pages() const {
  release_view_pages(user);
  release_view_pages(item);
  release_view_pages(rating);
  release_view_pages(timestamp);
  release_view_pages(part);
  release_view_pages(neg_user);
  release_view_pages(neg_item);
}

bool cache_store(const std::string& file, const std::string& key, const Dataset& d, std::string& why) {
  std::error_code ec;
  const std::string dir = fs::path(file).parent_path().string();
  fs::create_directories(dir, ec);
  // Temporary files of cache writers that were killed (their process is gone).
  remove_stale_temps(dir.empty() ? "." : dir, [](const std::string& name) {
    return name.size() > 4 && name.compare(name.size() - 4, 4, ".rzc") == 0;
  });
  try {
    AtomicFile out(file);  // <file>.tmp<pid>; removed on any failure below
    const int64_t written = now_ns();
    Out o(out);
    o.raw(kMagic, 8);
    o.str(key);
    o.i64(written);
    o.u64(d.sources.size());
    for (const auto& s : d.sources) {
      // The fingerprint taken when the reader opened the file; a file changed since then
      // (while loading) is not cached, so the checksum below is of the content that was read.
      if (!source_file(s.path, s.exists).same_stat(s)) {
        why = s.path + " changed while it was being read";
        return false;
      }
      o.str(s.path);
      o.u64(s.exists ? 1 : 0);
      o.u64(s.dev), o.u64(s.ino), o.u64(s.size), o.i64(s.mtime_ns), o.i64(s.ctime_ns);
      o.u64(s.exists ? file_checksum(s.path) : 0);
    }
    o.strs(d.users.raws());
    o.u64(d.users.integer_ids() ? 1 : 0);
    o.strs(d.items.raws());
    o.u64(d.items.integer_ids() ? 1 : 0);
    // The interaction arrays, lengths first, so a reader can fill them in parallel.
    o.u64(d.user.size()), o.u64(d.rating.size()), o.u64(d.timestamp.size()), o.u64(d.part.size());
    // Each array aligned, to be mapped in place by cache_load.
    o.align(), o.raw(d.user.data(), d.user.size() * 4);
    o.align(), o.raw(d.item.data(), d.item.size() * 4);
    o.align(), o.raw(d.rating.data(), d.rating.size() * 4);
    o.align(), o.raw(d.timestamp.data(), d.timestamp.size() * 8);
    o.align(), o.raw(d.part.data(), d.part.size());
    o.u64(d.neg_user.size());
    o.align(), o.raw(d.neg_user.data(), d.neg_user.size() * 4);
    o.align(), o.raw(d.neg_item.data(), d.neg_item.size() * 4);
    put_side(o, d.user_info);
    put_side(o, d.item_info);
    o.i64(d.report.rows_read);
    o.u64(d.report.dropped.size());
    for (const auto& [w, n] : d.report.dropped) {
      o.str(w);
      o.i64(n);
    }
    o.strs(d.report.notes);
    o.u64(kEnd);
    o.checksum();
    out.commit();  // flushed, fsynced, renamed over `file`, the folder fsynced
  } catch (const std::exception& e) {
    why = e.what();
    return false;
  }
  return true;
}

}  // namespace rzoo
