// `rzoo data fetch` (datasets/fetch.h) and the digests it checks (core/hash.h). No network: the
// downloads come from an HTTP server this test runs on 127.0.0.1, serving archives it builds.
#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "core/hash.h"
#include "datasets/fetch.h"

using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }

// A minimal HTTP/1.0 server: GET of a known path gives its bytes, anything else 404.
class TestServer {
 public:
  explicit TestServer(std::map<std::string, std::string> files) : files_(std::move(files)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;  // any free port
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 8) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~TestServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string req;
      char buf[2048];
      while (req.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, size_t(n));
      }
      const size_t sp = req.find(' '), sp2 = req.find(' ', sp + 1);
      const std::string path = sp == std::string::npos ? "" : req.substr(sp + 1, sp2 - sp - 1);
      const auto it = files_.find(path);
      std::string resp;
      if (it == files_.end()) {
        resp = "HTTP/1.0 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found";
      } else {
        resp = "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
               std::to_string(it->second.size()) + "\r\nConnection: close\r\n\r\n" + it->second;
      }
      for (size_t off = 0; off < resp.size();) {
        const ssize_t n = ::send(c, resp.data() + off, resp.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += size_t(n);
      }
      ::close(c);
    }
  }
  std::map<std::string, std::string> files_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

uint32_t crc32(const std::string& s) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put16(std::string& o, uint32_t v) {
  o += char(v & 0xFF);
  o += char((v >> 8) & 0xFF);
}
void put32(std::string& o, uint32_t v) {
  put16(o, v & 0xFFFF);
  put16(o, v >> 16);
}

// A zip archive of stored (uncompressed) files, as PKWARE's APPNOTE describes: what unzip reads.
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string out, central;
  for (const auto& [name, data] : files) {
    const uint32_t offset = uint32_t(out.size()), crc = crc32(data), size = uint32_t(data.size());
    put32(out, 0x04034b50);
    put16(out, 10), put16(out, 0), put16(out, 0), put16(out, 0), put16(out, 0x21);  // version, flags, stored, time, date
    put32(out, crc), put32(out, size), put32(out, size);
    put16(out, uint32_t(name.size())), put16(out, 0);
    out += name + data;
    put32(central, 0x02014b50);
    put16(central, 20), put16(central, 10), put16(central, 0), put16(central, 0), put16(central, 0),
        put16(central, 0x21);
    put32(central, crc), put32(central, size), put32(central, size);
    put16(central, uint32_t(name.size())), put16(central, 0), put16(central, 0), put16(central, 0), put16(central, 0);
    put32(central, 0), put32(central, offset);
    central += name;
  }
  const uint32_t cd_offset = uint32_t(out.size());
  out += central;
  put32(out, 0x06054b50);
  put16(out, 0), put16(out, 0), put16(out, uint32_t(files.size())), put16(out, uint32_t(files.size()));
  put32(out, uint32_t(central.size())), put32(out, cd_offset), put16(out, 0);
  return out;
}

std::string sha256(const std::string& s) {
  rzoo::Sha256 h;
  h.update(s.data(), s.size());
  return h.hex();
}

// A small MovieLens-100K-like u.data: 30 users x 40 items, ratings 1-5, Unix times.
std::string small_u_data() {
  std::string out;
  for (int u = 1; u <= 30; ++u)
    for (int i = 1; i <= 40; ++i)
      if ((u * 7 + i * 3) % 4 != 0) out += fmt::format("{}\t{}\t{}\t{}\n", u, i, 1 + (u + i) % 5, 880000000 + u * 100 + i);
  return out;
}

bool have_tools() {
  if (run_shell("command -v curl || command -v wget").code != 0 || run_shell("command -v unzip").code != 0) {
    WARN("skipped: rzoo data fetch needs curl (or wget) and unzip (scripts/install-deps.sh installs them)");
    return false;
  }
  return true;
}

// What a failed fetch may leave in the data folder: nothing but what was there before.
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("hash: SHA-256 and MD5 against the standards' test vectors", "[fetch]") {
  auto sha = [](const std::string& s) { return sha256(s); };
  auto md5 = [](const std::string& s) {
    rzoo::Md5 h;
    h.update(s.data(), s.size());
    return h.hex();
  };
  // FIPS 180-2 appendix B and the empty string.
  CHECK(sha("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // RFC 1321 appendix A.5.
  CHECK(md5("") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(md5("abc") == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(md5("message digest") == "f96b697d7cb7938d525a2f31aaf161d0");
  CHECK(md5("12345678901234567890123456789012345678901234567890123456789012345678901234567890") ==
        "57edf4a22be3c955ac49da2e2107b67a");
  // Fed in pieces of every size around the 64-byte block and the 56-byte padding edge: the same.
  std::string text;
  for (int i = 0; i < 300; ++i) text += char('a' + (i * 7) % 26);
  for (size_t len : {55u, 56u, 63u, 64u, 65u, 119u, 120u, 300u})
    for (size_t piece : {1u, 3u, 63u, 64u, 100u}) {
      rzoo::Sha256 h;
      rzoo::Md5 m;
      for (size_t o = 0; o < len; o += piece) {
        h.update(text.data() + o, std::min(piece, len - o));
        m.update(text.data() + o, std::min(piece, len - o));
      }
      INFO("len " << len << " piece " << piece);
      CHECK(h.hex() == sha(text.substr(0, len)));
      CHECK(m.hex() == md5(text.substr(0, len)));
    }
  // A file, against coreutils' own tools.
  TempDir t;
  const std::string f = t.write("x.bin", text + std::string(5000, '\0') + text);
  const auto sum = run_shell("sha256sum " + q(f));
  const auto msum = run_shell("md5sum " + q(f));
  if (sum.code == 0) CHECK(sum.output.substr(0, 64) == rzoo::file_digest(f, "sha256"));
  if (msum.code == 0) CHECK(msum.output.substr(0, 32) == rzoo::file_digest(f, "md5"));
  CHECK_THROWS_WITH(rzoo::file_digest(t.file("none"), "sha256"), Contains("cannot open"));
}

TEST_CASE("fetch: the catalogue, and its errors naming file, entry and field", "[fetch]") {
  const auto all = rzoo::load_data_sources(config_dir() + "/data-sources.yaml");
  std::vector<std::string> names;
  for (const auto& s : all) names.push_back(s.name);
  CHECK(names == std::vector<std::string>{"ml-100k", "ml-10m", "ml-1m", "ml-20m", "ml-25m", "ml-latest-small"});
  for (const auto& s : all) {
    INFO(s.name);
    CHECK(s.url.rfind("https://files.grouplens.org/", 0) == 0);
    CHECK((s.sha256.size() == 64 || s.md5.size() == 32));
    CHECK(s.format == "movielens");
  }
  CHECK_THROWS_WITH(rzoo::find_data_source(all, "ml-99k"), Contains("unknown dataset 'ml-99k'") && Contains("ml-100k, ml-10m"));
  TempDir t;
  auto bad = [&](const std::string& text) {
    const std::string f = t.write("src.yaml", text);
    return rzoo::load_data_sources(config_dir() + "/data-sources.yaml", f);
  };
  CHECK_THROWS_WITH(bad("ml-100k: {urll: x}\n"), Contains("src.yaml:1: data source 'ml-100k': field 'urll'") &&
                                                     Contains("unknown field"));
  CHECK_THROWS_WITH(bad("mine: {url: https://x/y.zip, folder: y, format: csv}\n"), Contains("no pinned checksum"));
  CHECK_THROWS_WITH(bad("mine: {url: https://x/y.zip, sha256: abc, folder: y, format: csv}\n"),
                    Contains("sha256 'abc' is not 64 hex digits"));
  CHECK_THROWS_WITH(bad("mine: {url: ftp://x/y.zip, md5: d41d8cd98f00b204e9800998ecf8427e, folder: y, format: csv}\n"),
                    Contains("must start with https://"));
  CHECK_THROWS_WITH(bad("ml-100k: {folder: ../up}\n"), Contains("folder '../up' must be one folder name"));
  CHECK_THROWS_WITH(bad("ml-100k: {bytes: -3}\n"), Contains("field 'bytes'") && Contains("not a size"));
  // Changing one field of a built-in entry keeps the others.
  const auto changed = bad("ml-100k: {url: 'http://127.0.0.1:1/ml-100k.zip'}\n");
  const auto& e = rzoo::find_data_source(changed, "ml-100k");
  CHECK(e.url == "http://127.0.0.1:1/ml-100k.zip");
  CHECK(e.folder == "ml-100k");
  CHECK(e.sha256 == rzoo::find_data_source(all, "ml-100k").sha256);
}

TEST_CASE("fetch: ml-100k from a local server, then train --data on it and data stats", "[fetch][cli]") {
  if (!have_tools()) return;
  const std::string u = small_u_data();
  const std::string zip = make_zip({{"ml-100k/u.data", u}, {"ml-100k/README", "test copy\n"}});
  TestServer server({{"/ml-100k.zip", zip}, {"/other.zip", make_zip({{"elsewhere/u.data", u}})}});
  TempDir t;
  const std::string dir = t.file("data");
  // The built-in entry with this server's URL and this archive's checksum: everything else
  // (folder, format, config) as the catalogue gives it.
  const std::string src = t.write("src.yaml", fmt::format("ml-100k:\n  url: {}\n  sha256: {}\n  bytes: {}\n",
                                                          server.url("/ml-100k.zip"), sha256(zip), zip.size()));
  auto r = run_cli("data fetch ml-100k --dir " + q(dir) + " --sources " + q(src));
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("sha256 checked") != std::string::npos);
  CHECK(read_file(dir + "/ml-100k/u.data") == u);
  CHECK(entries(dir) == std::vector<std::string>{"ml-100k", "ml-100k.yaml"});  // no temporary file left
  const std::string yaml = read_file(dir + "/ml-100k.yaml");
  CHECK(yaml.find("format: movielens") != std::string::npos);
  CHECK(yaml.find("path: " + dir + "/ml-100k") != std::string::npos);
  CHECK(yaml.find("License: GroupLens") != std::string::npos);

  // The written config loads: data stats counts what the file holds.
  int rows = 0;
  std::set<int> users, items;
  for (int uu = 1; uu <= 30; ++uu)
    for (int i = 1; i <= 40; ++i)
      if ((uu * 7 + i * 3) % 4 != 0) ++rows, users.insert(uu), items.insert(i);
  r = run_cli("data stats " + q(dir + "/ml-100k.yaml") + " --no-split --json --set threads=1");
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("\"interactions\": " + std::to_string(rows)) != std::string::npos);
  CHECK(r.output.find("\"users\": " + std::to_string(users.size())) != std::string::npos);

  // The README's next step: train on the fetched file without writing a config.
  r = run_cli("train --data " + q(dir + "/ml-100k/u.data") + " --model bpr --set train.epochs=2 --set threads=1 " +
              "--set output_dir=" + q(t.file("runs")));
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("separator tab, no header, columns user=0 item=1 rating=2 timestamp=3") != std::string::npos);
  CHECK(r.output.find("dataset ml-100k-data: " + std::to_string(users.size()) + " users") != std::string::npos);

  // A second fetch finds the copy: nothing downloaded.
  r = run_cli("data fetch ml-100k --dir " + q(dir) + " --sources " + q(src));
  CHECK(r.code == 0);
  CHECK(r.output.find("already fetched") != std::string::npos);
  CHECK(r.output.find("downloading") == std::string::npos);

  // A dataset config whose path does not exist uses the fetched copy of the same folder.
  const std::string exp = t.write("exp.yaml", "dataset: {name: mine, format: movielens, path: /nonexistent/x/ml-100k}\n");
  r = run_shell("RZOO_DATA=" + q(dir) + " " + RZOO_TEST_CLI + " data stats " + q(exp) + " --no-split --set threads=1");
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find(std::to_string(rows) + " interactions") != std::string::npos);
  r = run_shell("RZOO_DATA=" + q(t.file("empty")) + " " + RZOO_TEST_CLI + " data stats " + q(exp) + " --no-split");
  CHECK(r.code == 1);
  CHECK(r.output.find("does not exist") != std::string::npos);
  CHECK(r.output.find("rzoo data fetch") != std::string::npos);

  // --force fetches again and replaces the copy, still leaving nothing else behind.
  r = run_cli("data fetch ml-100k --force --dir " + q(dir) + " --sources " + q(src));
  CHECK(r.code == 0);
  CHECK(entries(dir) == std::vector<std::string>{"ml-100k", "ml-100k.yaml"});
}

TEST_CASE("fetch: a failed or wrong download leaves nothing", "[fetch][cli]") {
  if (!have_tools()) return;
  const std::string zip = make_zip({{"ml-100k/u.data", small_u_data()}});
  const std::string wrong_folder = make_zip({{"elsewhere/u.data", small_u_data()}});
  TestServer server({{"/ml-100k.zip", zip}, {"/wrong.zip", wrong_folder}});
  TempDir t;
  const std::string dir = t.file("data");
  fs::create_directories(dir);
  t.write("data/keep.txt", "mine\n");
  const std::vector<std::string> before = entries(dir);
  auto fetch = [&](const std::string& src_text, const std::string& env = "") {
    const std::string src = t.write("src.yaml", src_text);
    return run_shell(env + std::string(RZOO_TEST_CLI) + " data fetch ml-100k --dir " + q(dir) + " --sources " + q(src));
  };
  // The pinned checksum of the real file against another one (served by the mirror).
  auto r = run_shell("RZOO_DATA_MIRROR=" + q(server.base()) + " " + RZOO_TEST_CLI + " data fetch ml-100k --dir " + q(dir));
  INFO(r.output);
  CHECK(r.code == 1);
  CHECK(r.output.find("expected 4924029") != std::string::npos);
  CHECK(entries(dir) == before);
  // Size unknown: the digest decides.
  r = fetch(fmt::format("ml-100k: {{url: '{}', bytes: 0}}\n", server.url("/ml-100k.zip")));
  INFO(r.output);
  CHECK(r.code == 1);
  CHECK(r.output.find("checksum mismatch") != std::string::npos);
  CHECK(r.output.find("got " + sha256(zip)) != std::string::npos);
  CHECK(entries(dir) == before);
  // Not found (HTTP 404).
  r = fetch(fmt::format("ml-100k: {{url: '{}'}}\n", server.url("/missing.zip")));
  CHECK(r.code == 1);
  CHECK(r.output.find("download of " + server.url("/missing.zip") + " failed") != std::string::npos);
  CHECK(entries(dir) == before);
  // The right checksum but not the folder the entry names.
  r = fetch(fmt::format("ml-100k: {{url: '{}', sha256: {}, bytes: 0}}\n", server.url("/wrong.zip"), sha256(wrong_folder)));
  CHECK(r.code == 1);
  CHECK(r.output.find("holds elsewhere but not the folder 'ml-100k'") != std::string::npos);
  CHECK(entries(dir) == before);
  // Nobody's connection on this port: a clear failure too.
  r = fetch("ml-100k: {url: 'http://127.0.0.1:1/ml-100k.zip', bytes: 0}\n");
  CHECK(r.code == 1);
  CHECK(entries(dir) == before);
  // A folder of the same name that fetch did not make is not overwritten.
  fs::create_directories(dir + "/ml-100k");
  t.write("data/ml-100k/notes.txt", "my own\n");
  r = fetch(fmt::format("ml-100k: {{url: '{}', sha256: {}}}\n", server.url("/ml-100k.zip"), sha256(zip)));
  CHECK(r.code == 1);
  CHECK(r.output.find("was not made by `rzoo data fetch ml-100k`") != std::string::npos);
  CHECK(read_file(dir + "/ml-100k/notes.txt") == "my own\n");
  fs::remove_all(dir + "/ml-100k");
  // What a killed fetch left (its process gone) is removed by the next one.
  const long dead = dead_pid();
  fs::create_directories(dir + "/.rzoo-fetch-ml-100k." + std::to_string(dead) + ".unpack/ml-100k");
  t.write("data/.rzoo-fetch-ml-100k." + std::to_string(dead) + ".part", "half");
  r = fetch(fmt::format("ml-100k: {{url: '{}', sha256: {}, bytes: {}}}\n", server.url("/ml-100k.zip"), sha256(zip),
                        zip.size()));
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(entries(dir) == std::vector<std::string>{"keep.txt", "ml-100k", "ml-100k.yaml"});
  CHECK(run_cli("data fetch").code == 2);
  r = run_cli("data fetch ml-99k --dir " + q(dir));
  CHECK(r.code == 1);
  CHECK(r.output.find("unknown dataset 'ml-99k'") != std::string::npos);
}
