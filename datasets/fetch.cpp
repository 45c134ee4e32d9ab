// `rzoo data fetch` (see fetch.h). The download and unpacking are done by the tools every Linux
// machine has for them (curl or wget; unzip, tar) run as child processes without a shell; rzoo
// checks what they produce (size, pinned digest, the expected folder) and owns every file name.
#include "datasets/fetch.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <set>

#include <yaml-cpp/yaml.h>

#include "core/atomic_file.h"
#include "core/config.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/log.h"

namespace fs = std::filesystem;

namespace rzoo {

namespace {

const std::set<std::string> kFields = {"url", "sha256", "md5", "bytes", "folder", "format",
                                       "config", "description", "license"};

bool is_hex(const std::string& s, size_t n) {
  return s.size() == n && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
         });
}

// One folder or file name: no '/', not "." or "..", no control characters, not hidden.
bool safe_component(const std::string& s) {
  if (s.empty() || s == "." || s == ".." || s[0] == '.') return false;
  return std::none_of(s.begin(), s.end(), [](char c) { return c == '/' || (unsigned char)c < 32 || c == 127; });
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Adds or updates the entries of one catalogue file.
void read_sources(const std::string& file, std::vector<DataSource>& out) {
  const Layer layer = load_layer(file);
  const YAML::Node& root = layer.node;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string name = it->first.as<std::string>();
    const YAML::Node e = it->second;
    const std::string where = fmt::format("{}:{}: data source '{}'", file, it->first.Mark().line + 1, name);
    if (!safe_component(name)) fail("{}: a name must be one word (no '/', not starting with '.')", where);
    if (!e.IsMap()) fail("{}: expected a map of fields ({})", where, "url, sha256, folder, format, ...");
    auto found = std::find_if(out.begin(), out.end(), [&](const DataSource& s) { return s.name == name; });
    DataSource s;
    if (found != out.end()) s = *found;
    s.name = name;
    for (auto f = e.begin(); f != e.end(); ++f) {
      const std::string key = f->first.as<std::string>();
      const YAML::Node v = f->second;
      const std::string at = fmt::format("{}: field '{}' (line {})", where, key, f->first.Mark().line + 1);
      if (!kFields.count(key)) {
        std::string known;
        for (const auto& k : kFields) known += (known.empty() ? "" : ", ") + k;
        fail("{}: unknown field (known: {})", at, known);
      }
      if (key == "config") {
        if (!v.IsMap()) fail("{}: expected a map of dataset keys, e.g. {{threshold: 4}}", at);
        for (auto c = v.begin(); c != v.end(); ++c) {
          YAML::Emitter em;
          em << YAML::Flow << c->second;
          s.config[c->first.as<std::string>()] = em.c_str();
        }
        continue;
      }
      if (!v.IsScalar()) fail("{}: expected a single value", at);
      const std::string text = v.Scalar();
      if (key == "url") s.url = text;
      if (key == "sha256") s.sha256 = lower(text);
      if (key == "md5") s.md5 = lower(text);
      if (key == "folder") s.folder = text;
      if (key == "format") s.format = text;
      if (key == "description") s.description = text;
      if (key == "license") s.license = text;
      if (key == "bytes") {
        try {
          size_t used = 0;
          s.bytes = std::stoll(text, &used);
          if (used != text.size() || s.bytes < 0) throw std::invalid_argument(text);
        } catch (const std::exception&) {
          fail("{}: '{}' is not a size in bytes (an integer >= 0)", at, text);
        }
      }
    }
    if (s.url.rfind("https://", 0) != 0 && s.url.rfind("http://", 0) != 0 && s.url.rfind("file://", 0) != 0)
      fail("{}: url '{}' must start with https://, http:// or file://", where, s.url);
    if (!s.sha256.empty() && !is_hex(s.sha256, 64)) fail("{}: sha256 '{}' is not 64 hex digits", where, s.sha256);
    if (!s.md5.empty() && !is_hex(s.md5, 32)) fail("{}: md5 '{}' is not 32 hex digits", where, s.md5);
    if (s.sha256.empty() && s.md5.empty())
      fail("{}: no pinned checksum (give sha256: the file's SHA-256); rzoo does not use unchecked downloads", where);
    if (!safe_component(s.folder)) fail("{}: folder '{}' must be one folder name", where, s.folder);
    if (s.format.empty()) fail("{}: no format (the dataset.format of its files, e.g. movielens or csv)", where);
    if (found != out.end())
      *found = s;
    else
      out.push_back(s);
  }
}

// The file name at the end of a URL (without query or fragment).
std::string url_file_name(const std::string& url) {
  std::string u = url.substr(0, url.find_first_of("?#"));
  const std::string name = u.substr(u.find_last_of('/') + 1);
  return name.empty() ? "download" : name;
}

// $RZOO_DATA_MIRROR replaces everything before the file name.
std::string mirrored(const std::string& url) {
  const char* m = std::getenv("RZOO_DATA_MIRROR");
  if (!m || !*m) return url;
  std::string base = m;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + "/" + url_file_name(url);
}

std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    const size_t end = std::min(p.find(':', start), p.size());
    const std::string dir = p.substr(start, end - start);
    const std::string file = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(file.c_str(), X_OK) == 0) return file;
    start = end + 1;
  }
  return "";
}

// Runs a program (no shell) with the caller's stdout/stderr; its exit status, 128 + signal when
// a signal ended it, 127 when it could not start.
int run_program(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) fail("cannot start {}: fork: {}", args[0], std::strerror(errno));
  if (pid == 0) {
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) fail("waiting for {}: {}", args[0], std::strerror(errno));
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Temporary names: DIR/.rzoo-fetch-<name>.<pid>.<what>.
std::string temp_name(const std::string& dir, const std::string& name, const std::string& what) {
  return fmt::format("{}/.rzoo-fetch-{}.{}.{}", dir, name, long(::getpid()), what);
}

// Removes what fetches that died left in `dir` (their process no longer runs).
void remove_dead_temps(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(".rzoo-fetch-", 0) != 0) continue;
    const size_t last = n.rfind('.');
    const size_t prev = last == std::string::npos || last == 0 ? std::string::npos : n.rfind('.', last - 1);
    if (prev == std::string::npos) continue;
    const std::string pid_text = n.substr(prev + 1, last - prev - 1);
    if (pid_text.empty() || !std::all_of(pid_text.begin(), pid_text.end(), ::isdigit)) continue;
    const long pid = std::atol(pid_text.c_str());
    if (pid <= 0 || pid == long(::getpid())) continue;
    if (::kill(pid_t(pid), 0) == 0 || errno != ESRCH) continue;
    fs::remove_all(e.path(), ec);
  }
}

std::string today() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

std::string digest_label(const DataSource& s) {
  return s.sha256.empty() ? "md5 " + s.md5 : "sha256 " + s.sha256;
}

// DIR/<folder>/.rzoo-fetch: what was fetched, so a second fetch can tell its own complete copy
// from a folder someone else made.
const char* const kStamp = kFetchStamp;

// Lines: name, url, digest, format (core/config.cpp reads the format to use a fetched copy).
std::string stamp_text(const DataSource& s) {
  return fmt::format("{}\n{}\n{}\n{}\n", s.name, s.url, digest_label(s), s.format);
}

bool read_file(const std::string& path, std::string& out) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char buf[4096];
  size_t n;
  out.clear();
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return true;
}

// The dataset config written beside the data.
void write_config(const DataSource& s, const std::string& folder, const std::string& file) {
  YAML::Emitter em;
  em << YAML::BeginMap << YAML::Key << "dataset" << YAML::Value << YAML::BeginMap;
  em << YAML::Key << "name" << YAML::Value << s.name;
  em << YAML::Key << "format" << YAML::Value << s.format;
  em << YAML::Key << "path" << YAML::Value << folder;
  for (const auto& [k, v] : s.config) {
    const YAML::Node value = YAML::Load(v);
    em << YAML::Key << k << YAML::Value << value;
  }
  em << YAML::EndMap << YAML::EndMap;
  std::string text = fmt::format("# {}\n# License: {}\n# Fetched by `rzoo data fetch {}` from {} ({}) on {}.\n",
                                 s.description.empty() ? s.name : s.description,
                                 s.license.empty() ? "see the publisher" : s.license, s.name, s.url,
                                 digest_label(s), today());
  text += em.c_str();
  text += "\n";
  write_bytes_atomic(file, text.data(), text.size());
}

}  // namespace

std::vector<DataSource> load_data_sources(const std::string& builtin, const std::string& user) {
  std::vector<DataSource> out;
  read_sources(builtin, out);
  if (!user.empty()) read_sources(user, out);
  std::sort(out.begin(), out.end(), [](const DataSource& a, const DataSource& b) { return a.name < b.name; });
  return out;
}

const DataSource& find_data_source(const std::vector<DataSource>& sources, const std::string& name) {
  for (const auto& s : sources)
    if (s.name == name) return s;
  std::string known;
  for (const auto& s : sources) known += (known.empty() ? "" : ", ") + s.name;
  fail("unknown dataset '{}' (rzoo data fetch knows: {}; add others with --sources FILE)", name, known);
}

FetchResult fetch_data(const DataSource& s, const FetchOptions& o, Logger& log) {
  const std::string dir = fs::absolute(o.dir.empty() ? data_home() : o.dir).lexically_normal().string();
  {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) fail("{}: cannot create the data folder ({})", dir, ec.message());
    if (!fs::is_directory(dir)) fail("{}: not a folder", dir);
  }
  remove_dead_temps(dir);
  FetchResult r;
  r.folder = dir + "/" + s.folder;
  r.config = dir + "/" + s.name + ".yaml";
  const std::string stamp = r.folder + "/" + kStamp;
  std::error_code ec;
  const bool there = fs::exists(r.folder, ec);
  if (there && !o.force) {
    std::string text;
    if (read_file(stamp, text) && text == stamp_text(s)) {
      write_config(s, r.folder, r.config);
      r.already = true;
      log.line(fmt::format("{}: already fetched in {} (--force fetches it again)", s.name, r.folder));
      return r;
    }
    fail("{}: exists but was not made by `rzoo data fetch {}` from {} (or that fetch did not finish); "
         "move it away, choose another --dir, or pass --force to replace it",
         r.folder, s.name, s.url);
  }

  const std::string url = mirrored(s.url);
  const std::string part = temp_name(dir, s.name, "part");
  const std::string unpack = temp_name(dir, s.name, "unpack");
  const std::string old = temp_name(dir, s.name, "old");
  // Whatever happens below, the temporary files go; the data folder holds the old copy or the
  // new one, never a mix.
  struct Cleanup {
    std::vector<std::string> paths;
    ~Cleanup() {
      std::error_code e;
      for (const auto& p : paths) fs::remove_all(p, e);
    }
  } cleanup{{part, unpack}};

  // 1. Download.
  std::vector<std::string> cmd;
  const bool bar = o.progress && ::isatty(STDERR_FILENO);
  if (const std::string curl = find_program("curl"); !curl.empty()) {
    cmd = {curl, "--fail", "--location", "--retry", "2", "--connect-timeout", "30", bar ? "--progress-bar" : "-sS",
           "--output", part, url};
  } else if (const std::string wget = find_program("wget"); !wget.empty()) {
    cmd = {wget, "-q", "--tries=3", "--timeout=30", "-O", part, url};
    if (bar) cmd.insert(cmd.begin() + 2, "--show-progress");
  } else {
    fail("rzoo data fetch needs curl or wget to download (Debian: apt install curl)");
  }
  log.line(fmt::format("{}: downloading {}{}", s.name, url,
                       s.bytes > 0 ? fmt::format(" ({:.1f} MB)", double(s.bytes) / 1e6) : ""));
  const int rc = run_program(cmd);
  if (rc != 0) {
    if (rc > 128 && (rc - 128 == SIGINT || rc - 128 == SIGTERM))
      fail("{}: download of {} interrupted; nothing was kept", s.name, url);
    fail("{}: download of {} failed ({} exit status {}); nothing was kept", s.name, url,
         fs::path(cmd[0]).filename().string(), rc);
  }

  // 2. Check.
  const auto size = int64_t(fs::file_size(part, ec));
  if (ec) fail("{}: the download of {} left no file", s.name, url);
  if (s.bytes > 0 && size != s.bytes)
    fail("{}: {} gave {} bytes, expected {} (truncated, or not the published file); it was removed", s.name, url,
         size, s.bytes);
  const std::string algo = s.sha256.empty() ? "md5" : "sha256";
  const std::string want = s.sha256.empty() ? s.md5 : s.sha256;
  const std::string got = file_digest(part, algo);
  if (got != want)
    fail("{}: checksum mismatch for {}: {} expected {}, got {}; the download was removed (damaged on the way, "
         "or the publisher changed the file: pin the new checksum with --sources FILE once you trust it)",
         s.name, url, algo, want, got);
  log.line(fmt::format("{}: {} bytes, {} checked", s.name, size, algo));

  // 3. Unpack into a temporary folder.
  fs::create_directories(unpack, ec);
  if (ec) fail("{}: cannot create {} ({})", s.name, unpack, ec.message());
  const std::string file = lower(url_file_name(s.url));
  if (ends_with(file, ".zip")) {
    const std::string unzip = find_program("unzip");
    if (unzip.empty()) fail("{}: unpacking a .zip needs unzip (Debian: apt install unzip)", s.name);
    const int z = run_program({unzip, "-q", part, "-d", unpack});
    if (z != 0 && z != 1) fail("{}: unzip failed on the download (exit status {}); nothing was kept", s.name, z);
  } else if (ends_with(file, ".tar") || ends_with(file, ".tar.gz") || ends_with(file, ".tgz") ||
             ends_with(file, ".tar.bz2") || ends_with(file, ".tar.xz")) {
    const std::string tar = find_program("tar");
    if (tar.empty()) fail("{}: unpacking a tar archive needs tar", s.name);
    const int t = run_program({tar, "-xf", part, "-C", unpack, "--no-same-owner"});
    if (t != 0) fail("{}: tar failed on the download (exit status {}); nothing was kept", s.name, t);
  } else {
    fs::create_directories(unpack + "/" + s.folder, ec);
    fs::copy_file(part, unpack + "/" + s.folder + "/" + url_file_name(s.url), ec);
    if (ec) fail("{}: cannot copy the download into {} ({})", s.name, unpack, ec.message());
  }
  const std::string made = unpack + "/" + s.folder;
  if (!fs::is_directory(made)) {
    std::string held;
    for (const auto& e : fs::directory_iterator(unpack, ec)) held += (held.empty() ? "" : ", ") + e.path().filename().string();
    fail("{}: the archive holds {} but not the folder '{}' its entry names; nothing was kept", s.name,
         held.empty() ? "nothing" : held, s.folder);
  }
  {
    const std::string text = stamp_text(s);
    write_bytes_atomic(made + "/" + kStamp, text.data(), text.size());
  }

  // 4. Into place (an earlier copy, with --force, is moved aside first and removed after).
  if (there) {
    fs::rename(r.folder, old, ec);
    if (ec) fail("{}: cannot move the earlier copy aside ({})", r.folder, ec.message());
    cleanup.paths.push_back(old);
  }
  fs::rename(made, r.folder, ec);
  if (ec) {
    std::error_code e2;
    if (there) fs::rename(old, r.folder, e2);
    fail("{}: cannot move the unpacked data into place ({})", r.folder, ec.message());
  }
  fsync_dir(dir);
  write_config(s, r.folder, r.config);
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(r.folder, ec))
    if (e.is_regular_file()) ++files;
  log.line(fmt::format("{}: {} files in {}\n{}: dataset config {} (rzoo data stats {}; rzoo train --data {} "
                       "--model bpr)",
                       s.name, files - 1, r.folder, s.name, r.config, r.config, r.folder));
  if (!s.license.empty()) log.line(fmt::format("{}: license: {}", s.name, s.license));
  return r;
}

}  // namespace rzoo
