// TensorBoard event files and history.csv. The event files are read back by a reader written
// here from the format's description alone (its own bitwise CRC32C, varint and protobuf
// decoding), so that a mistake shared by writer and reader cannot hide.
#include "helpers.h"
#include "trainer_fixture.h"

#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include <torch/torch.h>

#include "core/crc32c.h"
#include "core/log.h"
#include "core/tensorboard.h"
#include "datasets/dataset.h"
#include "models/registry.h"
#include "trainers/experiment.h"
#include "trainers/trainer.h"

using namespace rzoo;
using namespace rzoo::test;

namespace {

// ---- The independent reader ----

uint32_t bitwise_crc32c(const unsigned char* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}

uint32_t masked(uint32_t crc) {
  const uint32_t rotated = (crc >> 15) | (crc << 17);
  return rotated + 0xa282ead8u;
}

uint64_t le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

struct Decoded {
  double wall_time = 0;
  bool has_wall_time = false, has_step = false;
  int64_t step = 0;
  std::string file_version;
  std::vector<std::pair<std::string, float>> values;
  int64_t session_status = -1;
};

// Protobuf fields of one message: calls on(field, wire_type, varint or fixed value, bytes).
struct Field {
  uint32_t number, wire_type;
  uint64_t number_value;  // varint, fixed64 or fixed32
  std::string bytes;      // length-delimited
};

std::vector<Field> fields(const std::string& msg) {
  std::vector<Field> out;
  size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(msg.data());
  const auto varint = [&] {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      REQUIRE(i < msg.size());
      REQUIRE(shift < 64);
      const unsigned char b = p[i++];
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (i < msg.size()) {
    const uint64_t key = varint();
    Field f{static_cast<uint32_t>(key >> 3), static_cast<uint32_t>(key & 7), 0, {}};
    if (f.wire_type == 0) {
      f.number_value = varint();
    } else if (f.wire_type == 1) {
      REQUIRE(i + 8 <= msg.size());
      f.number_value = le(p + i, 8);
      i += 8;
    } else if (f.wire_type == 5) {
      REQUIRE(i + 4 <= msg.size());
      f.number_value = le(p + i, 4);
      i += 4;
    } else {
      REQUIRE(f.wire_type == 2);
      const uint64_t n = varint();
      REQUIRE(i + n <= msg.size());
      f.bytes = msg.substr(i, n);
      i += n;
    }
    out.push_back(f);
  }
  return out;
}

Decoded decode_event(const std::string& data) {
  Decoded e;
  for (const auto& f : fields(data)) {
    if (f.number == 1) {
      REQUIRE(f.wire_type == 1);
      std::memcpy(&e.wall_time, &f.number_value, 8);
      e.has_wall_time = true;
    } else if (f.number == 2) {
      REQUIRE(f.wire_type == 0);
      e.step = static_cast<int64_t>(f.number_value);
      e.has_step = true;
    } else if (f.number == 3) {
      REQUIRE(f.wire_type == 2);
      e.file_version = f.bytes;
    } else if (f.number == 5) {
      REQUIRE(f.wire_type == 2);
      for (const auto& v : fields(f.bytes)) {
        REQUIRE(v.number == 1);
        REQUIRE(v.wire_type == 2);
        std::string tag;
        bool has_value = false;
        float value = 0;
        for (const auto& x : fields(v.bytes)) {
          if (x.number == 1 && x.wire_type == 2) tag = x.bytes;
          if (x.number == 2 && x.wire_type == 5) {
            const auto bits = static_cast<uint32_t>(x.number_value);
            std::memcpy(&value, &bits, 4);
            has_value = true;
          }
        }
        REQUIRE(has_value);
        e.values.emplace_back(tag, value);
      }
    } else if (f.number == 6) {
      REQUIRE(f.wire_type == 2);
      e.session_status = 0;
      for (const auto& x : fields(f.bytes))
        if (x.number == 1 && x.wire_type == 0) e.session_status = static_cast<int64_t>(x.number_value);
    }
  }
  return e;
}

// Every record of a file, both CRCs checked; the first must be the file_version record.
std::vector<Decoded> read_events(const std::string& path) {
  const std::string bytes = read_file(path);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  std::vector<Decoded> out;
  size_t i = 0;
  while (i < bytes.size()) {
    INFO(path << " record " << out.size() << " at byte " << i);
    REQUIRE(i + 12 <= bytes.size());
    const uint64_t n = le(p + i, 8);
    CHECK(static_cast<uint32_t>(le(p + i + 8, 4)) == masked(bitwise_crc32c(p + i, 8)));
    REQUIRE(i + 12 + n + 4 <= bytes.size());
    CHECK(static_cast<uint32_t>(le(p + i + 12 + n, 4)) == masked(bitwise_crc32c(p + i + 12, n)));
    out.push_back(decode_event(bytes.substr(i + 12, n)));
    i += 12 + n + 4;
  }
  REQUIRE_FALSE(out.empty());
  CHECK(out[0].file_version == "brain.Event:2");
  CHECK(out[0].values.empty());
  for (size_t r = 1; r < out.size(); ++r) CHECK(out[r].file_version.empty());
  for (const auto& e : out) {
    CHECK(e.has_wall_time);
    CHECK(e.wall_time > 1.5e9);  // seconds since 1970, not milliseconds or zero
    CHECK(e.wall_time < 1e11);
  }
  return out;
}

std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());  // TensorBoard's order
  return out;
}

// tag -> step -> value over a run folder's event files, in name order, with TensorBoard's rule
// for a SessionLog START: earlier events at that step or later are dropped.
using Scalars = std::map<std::string, std::map<int64_t, float>>;
Scalars read_scalars(const std::string& dir, int* n_files = nullptr) {
  Scalars s;
  const auto files = event_files(dir);
  if (n_files) *n_files = static_cast<int>(files.size());
  for (const auto& f : files)
    for (const auto& e : read_events(f)) {
      if (e.session_status == 1)
        for (auto& [tag, steps] : s) steps.erase(steps.lower_bound(e.step), steps.end());
      for (const auto& [tag, v] : e.values) {
        INFO(tag << " step " << e.step);
        CHECK(e.has_step);
        CHECK(s[tag].count(e.step) == 0);  // each step once
        s[tag][e.step] = v;
      }
    }
  return s;
}

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    size_t at = 0;
    for (;;) {
      const size_t comma = line.find(',', at);
      cells.push_back(line.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
      if (comma == std::string::npos) break;
      at = comma + 1;
    }
    rows.push_back(cells);
  }
  return rows;
}

std::string q(const std::string& s) { return "'" + s + "'"; }

// The one run folder under `runs`.
std::string only_run(const std::string& runs) {
  std::vector<std::string> dirs;
  for (const auto& e : fs::directory_iterator(runs)) dirs.push_back(e.path().string());
  REQUIRE(dirs.size() == 1);
  return dirs[0];
}

// history.csv against the event files: one row per epoch 1..n, loss and every valid_ cell equal
// (as floats) to the scalars; empty cells exactly where there is no scalar.
void check_history_matches_events(const std::string& run, int64_t epochs) {
  const auto csv = read_csv(run + "/history.csv");
  INFO(read_file(run + "/history.csv"));
  REQUIRE(csv.size() == static_cast<size_t>(epochs) + 1);
  const auto& head = csv[0];
  REQUIRE(head.size() > 4);
  CHECK(head[0] == "epoch");
  CHECK(head[1] == "loss");
  CHECK(head[2] == "seconds");
  CHECK(head[3] == "lr");
  const Scalars s = read_scalars(run);
  std::set<std::string> valid_tags, valid_columns;
  for (const auto& [tag, steps] : s)
    if (tag.rfind("valid/", 0) == 0) valid_tags.insert(tag.substr(6));
  for (size_t c = 4; c < head.size(); ++c) {
    REQUIRE(head[c].rfind("valid_", 0) == 0);
    valid_columns.insert(head[c].substr(6));
  }
  CHECK(valid_columns == valid_tags);
  CHECK(valid_columns.count("ndcg@10") == 1);
  const auto cell_matches = [&](const std::string& cell, const std::string& tag, int64_t step) {
    INFO(tag << " step " << step << " cell '" << cell << "'");
    const auto t = s.find(tag);
    const bool has = t != s.end() && t->second.count(step);
    CHECK(has == !cell.empty());
    if (has && !cell.empty()) CHECK(static_cast<float>(std::stod(cell)) == t->second.at(step));
  };
  for (int64_t e = 1; e <= epochs; ++e) {
    const auto& row = csv[static_cast<size_t>(e)];
    REQUIRE(row.size() == head.size());
    CHECK(row[0] == std::to_string(e));
    cell_matches(row[1], "train/loss", e);
    cell_matches(row[2], "train/epoch_seconds", e);
    cell_matches(row[3], "train/lr", e);
    for (size_t c = 4; c < head.size(); ++c) cell_matches(row[c], "valid/" + head[c].substr(6), e);
  }
}

}  // namespace

TEST_CASE("tensorboard: the reader's CRC32C and the product's agree on the check value and on data", "[tensorboard]") {
  const std::string check = "123456789";
  const auto* p = reinterpret_cast<const unsigned char*>(check.data());
  CHECK(bitwise_crc32c(p, check.size()) == 0xE3069283u);
  CHECK(crc32c(0, check.data(), check.size()) == 0xE3069283u);
  std::string data;
  for (int i = 0; i < 1000; ++i) data += static_cast<char>(i * 37 + 11);
  const auto* d = reinterpret_cast<const unsigned char*>(data.data());
  for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{999}}) {
    INFO(n);
    CHECK(crc32c(0, d, n) == bitwise_crc32c(d, n));
    CHECK(tfrecord_mask(crc32c(0, d, n)) == masked(bitwise_crc32c(d, n)));
  }
}

TEST_CASE("tensorboard: an independent reader decodes every record the writer framed", "[tensorboard]") {
  TempDir t;
  const std::string long_tag = "valid/" + std::string(200, 'x');  // a length of two varint bytes
  std::string path;
  {
    EventWriter w(t.path.string());
    path = w.path();
    CHECK(w.ok());
    w.scalar("train/loss", 1, 0.6931);
    w.scalar("valid/ndcg@10", 1, 0.125);
    w.flush();
    w.scalar("train/loss", 2, -3.25);
    w.scalar(long_tag, 300, 1e-3);          // a step of two varint bytes
    w.scalar("big", int64_t{1} << 40, 7.0);  // and of six
    w.session_start(3);
    w.flush();
    w.flush();  // nothing pending: nothing written twice
  }
  const std::string name = fs::path(path).filename().string();
  CHECK(fs::path(path).parent_path() == t.path);
  REQUIRE(name.rfind("events.out.tfevents.", 0) == 0);
  const std::string rest = name.substr(std::strlen("events.out.tfevents."));
  const auto secs = std::stoll(rest.substr(0, rest.find('.')));
  CHECK(std::abs(static_cast<double>(secs) - static_cast<double>(std::time(nullptr))) < 600);
  CHECK(rest.find('.') != std::string::npos);  // .<hostname>
  CHECK(rest.size() > rest.find('.') + 1);

  const auto events = read_events(path);
  REQUIRE(events.size() == 7);
  struct Want {
    int64_t step;
    std::string tag;
    float value;
  };
  const std::vector<Want> want = {{1, "train/loss", 0.6931f}, {1, "valid/ndcg@10", 0.125f}, {2, "train/loss", -3.25f},
                                  {300, long_tag, 1e-3f},     {int64_t{1} << 40, "big", 7.0f}};
  for (size_t i = 0; i < want.size(); ++i) {
    INFO(i);
    const auto& e = events[i + 1];
    CHECK(e.step == want[i].step);
    REQUIRE(e.values.size() == 1);
    CHECK(e.values[0].first == want[i].tag);
    CHECK(e.values[0].second == want[i].value);
    CHECK(e.session_status == -1);
  }
  CHECK(events[6].session_status == 1);
  CHECK(events[6].step == 3);
  CHECK(events[6].values.empty());

  // A second writer in the same folder (a resume within the same second) gets a file of its own.
  EventWriter again(t.path.string());
  again.flush();
  CHECK(again.path() != path);
  CHECK(event_files(t.path.string()).size() == 2);
  CHECK(read_events(again.path()).size() == 1);
  CHECK(read_events(path).size() == 7);
}

TEST_CASE("tensorboard: a write error warns once and stops the events, never throws", "[tensorboard]") {
  std::vector<std::string> warnings;
  const auto warn = [&](const std::string& m) { warnings.push_back(m); };
  SECTION("a full disk (/dev/full)") {
    if (!fs::exists("/dev/full")) {
      WARN("no /dev/full here: skipped");
      return;
    }
    auto w = EventWriter::to_file("/dev/full", warn);
    CHECK(w.ok());
    w.scalar("train/loss", 1, 0.5);
    CHECK_NOTHROW(w.flush());
    CHECK_FALSE(w.ok());
    w.scalar("train/loss", 2, 0.4);
    CHECK_NOTHROW(w.flush());
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("/dev/full") != std::string::npos);
    CHECK(warnings[0].find(std::strerror(ENOSPC)) != std::string::npos);
  }
  SECTION("a folder that does not exist") {
    TempDir t;
    {
      EventWriter w(t.file("missing"), warn);
      CHECK_FALSE(w.ok());
      CHECK_NOTHROW(w.scalar("a", 1, 1.0));
      CHECK_NOTHROW(w.flush());
    }
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find(t.file("missing") + "/events.out.tfevents.") != std::string::npos);
    CHECK_FALSE(fs::exists(t.file("missing")));
  }
}

TEST_CASE("tensorboard: a training run's events and history.csv agree, epoch by epoch", "[tensorboard]") {
  TempDir t;
  // valid_every 2 over 3 epochs: epochs 2 and 3 (the last) are validated, epoch 1 not.
  const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: bpr\n"
                                            "train: {epochs: 3, lr: 0.01, valid_every: 2, early_stop: {patience: 0}}\n");
  const auto r = run_cli("train " + q(exp) + " --config-dir " + q(config_dir()) + " --set threads=1 --quiet --set output_dir=" +
                         q(t.file("runs")));
  INFO(r.output);
  REQUIRE(r.code == 0);
  const std::string run = only_run(t.file("runs"));
  int n_files = 0;
  const Scalars s = read_scalars(run, &n_files);
  CHECK(n_files == 1);
  for (const char* tag : {"train/loss", "train/lr", "train/epoch_seconds"}) {
    INFO(tag);
    REQUIRE(s.count(tag));
    CHECK(s.at(tag).size() == 3);
    CHECK(s.at(tag).begin()->first == 1);
    CHECK(s.at(tag).rbegin()->first == 3);
  }
  for (const auto& [step, lr] : s.at("train/lr")) CHECK(lr == 0.01f);
  REQUIRE(s.count("valid/ndcg@10"));
  REQUIRE(s.count("valid/hr@20"));
  for (const auto& [tag, steps] : s)
    if (tag.rfind("valid/", 0) == 0) {
      INFO(tag);
      CHECK(steps.count(1) == 0);
      CHECK(steps.count(2) == 1);
      CHECK(steps.count(3) == 1);
    }
  check_history_matches_events(run, 3);
  const auto csv = read_csv(run + "/history.csv");
  for (size_t c = 4; c < csv[0].size(); ++c) CHECK(csv[1][c].empty());  // epoch 1: not validated
}

TEST_CASE("tensorboard: a closed-form fit logs its one validation at step 1", "[tensorboard]") {
  TempDir t;
  const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: pop\n");
  const auto r = run_cli("train " + q(exp) + " --config-dir " + q(config_dir()) + " --set threads=1 --quiet --set output_dir=" +
                         q(t.file("runs")));
  INFO(r.output);
  REQUIRE(r.code == 0);
  const std::string run = only_run(t.file("runs"));
  const Scalars s = read_scalars(run);
  CHECK(s.count("train/loss") == 0);  // no loss to show
  CHECK(s.count("train/lr") == 0);
  REQUIRE(s.count("valid/ndcg@10"));
  CHECK(s.at("valid/ndcg@10").size() == 1);
  CHECK(s.at("valid/ndcg@10").count(1) == 1);
  check_history_matches_events(run, 1);
  const auto csv = read_csv(run + "/history.csv");
  CHECK(csv[1][1].empty());  // loss
  CHECK(csv[1][3].empty());  // lr
}

namespace {
using Fixture = TrainerFixture;

// history.csv without its seconds column (the only one that differs between two runs).
std::vector<std::vector<std::string>> without_seconds(std::vector<std::vector<std::string>> rows) {
  for (auto& r : rows) {
    REQUIRE(r.size() > 2);
    r.erase(r.begin() + 2);
  }
  return rows;
}

// last.pt as versions before history.csv wrote it: without history_lr, history_valid_names and
// history_valid.
void rewrite_as_old_checkpoint(const std::string& path, Fixture& f) {
  torch::serialize::InputArchive in;
  in.load_from(path);
  c10::IValue format, name;
  at::Tensor state, scalars, hist, probe;
  REQUIRE(in.try_read("format", format));
  REQUIRE(in.try_read("model_name", name));
  REQUIRE(in.try_read("state", state));
  REQUIRE(in.try_read("scalars", scalars));
  REQUIRE(in.try_read("history", hist));
  REQUIRE(in.try_read("history_lr", probe));  // the new field is there before
  Recommender m = f.model();
  torch::serialize::InputArchive model_in, optim_in;
  REQUIRE(in.try_read("model", model_in));
  m->load(model_in);
  REQUIRE(in.try_read("optimizer", optim_in));
  const auto o = TrainOptions::from_config(f.cfg);
  auto optim = make_optimizer(o.optimizer, m->parameters(), o.lr, o.weight_decay, o.momentum);
  optim->load(optim_in);
  torch::serialize::OutputArchive out, model_out, optim_out;
  out.write("format", format);
  out.write("model_name", name);
  out.write("state", state);
  out.write("scalars", scalars);
  out.write("history", hist);
  m->save(model_out);
  out.write("model", model_out);
  optim->save(optim_out);
  out.write("optimizer", optim_out);
  out.save_to(path);
  torch::serialize::InputArchive check;
  check.load_from(path);
  REQUIRE_FALSE(check.try_read("history_lr", probe));
}
}  // namespace

TEST_CASE("tensorboard: a paused then resumed run lists every epoch once, with the numbers of an uninterrupted run",
          "[tensorboard][resume]") {
  // old: from a checkpoint of an older version (no history of rates and metrics), without history.csv.
  const bool old = GENERATE(false, true);
  INFO("older checkpoint: " << old);
  Fixture f({"train.epochs=4", "train.early_stop.patience=0", "train.lr=0.01", "train.batch_size=512"});
  TempDir t;
  Recommender full{nullptr}, part{nullptr}, resumed{nullptr};
  REQUIRE(f.trainer(full, t.file("full"))->fit());
  const auto full_csv = read_csv(t.file("full/history.csv"));
  REQUIRE(full_csv.size() == 5);

  auto tp = f.trainer(part, t.file("part"));
  CHECK_FALSE(tp->fit(2));  // paused after 2 epochs, as a kill after the second checkpoint
  tp.reset();
  const auto before = read_csv(t.file("part/history.csv"));
  REQUIRE(before.size() == 3);
  if (old) {  // the run folder of an older version: neither history.csv nor event files
    rewrite_as_old_checkpoint(t.file("part/last.pt"), f);
    fs::remove(t.file("part/history.csv"));
    for (const auto& e : event_files(t.file("part"))) fs::remove(e);
  }
  auto tr = f.trainer(resumed, t.file("part"));
  tr->resume();
  REQUIRE(tr->fit());

  const auto after = read_csv(t.file("part/history.csv"));
  INFO(read_file(t.file("part/history.csv")));
  REQUIRE(after.size() == 5);
  for (size_t e = 1; e <= 4; ++e) CHECK(after[e][0] == std::to_string(e));
  if (!old) {
    // Epochs before the resume keep exactly their cells (seconds included); the whole file
    // equals an uninterrupted run's but for the seconds.
    for (size_t e = 0; e <= 2; ++e) CHECK(after[e] == before[e]);
    CHECK(without_seconds(after) == without_seconds(full_csv));
  } else {
    // Epochs 1-2 from an old checkpoint: train.lr, and of the metrics only the early-stopping one
    // (epoch 2; the others empty); epochs 3-4 complete.
    CHECK(after[0] == full_csv[0]);
    const auto col = static_cast<size_t>(std::find(after[0].begin(), after[0].end(), "valid_ndcg@10") - after[0].begin());
    REQUIRE(col < after[0].size());
    for (size_t e = 1; e <= 4; ++e) {
      INFO("epoch " << e);
      CHECK(after[e][1] == full_csv[e][1]);  // loss
      CHECK(after[e][3] == full_csv[e][3]);  // lr
      CHECK(after[e][col] == full_csv[e][col]);
      if (e >= 3) CHECK(without_seconds({after[e]}) == without_seconds({full_csv[e]}));
    }
    // Epoch 2's other metrics are not known any more.
    const size_t other = col == 4 ? 5 : 4;
    CHECK_FALSE(full_csv[2][other].empty());
    CHECK(after[2][other].empty());
  }
  // TensorBoard: a file per process; every epoch once per tag, equal to history.csv.
  int n_files = 0;
  const Scalars s = read_scalars(t.file("part"), &n_files);
  CHECK(n_files == (old ? 1 : 2));
  REQUIRE(s.count("train/loss"));
  CHECK(s.at("train/loss").size() == (old ? 2 : 4));
  if (!old) check_history_matches_events(t.file("part"), 4);
}

TEST_CASE("tensorboard: events a killed run wrote past its checkpoint are superseded on resume", "[tensorboard][resume]") {
  Fixture f({"train.epochs=3", "train.early_stop.patience=0", "train.lr=0.01", "train.batch_size=512"});
  TempDir t;
  Recommender part{nullptr}, resumed{nullptr};
  auto tp = f.trainer(part, t.file("part"));
  CHECK_FALSE(tp->fit(2));
  tp.reset();
  // As if epoch 3 had been logged and the process killed before last.pt was replaced.
  {
    EventWriter w(t.file("part"));
    w.scalar("train/loss", 3, 123.0);
    w.scalar("train/loss", 4, 456.0);
    w.flush();
  }
  auto tr = f.trainer(resumed, t.file("part"));
  tr->resume();
  REQUIRE(tr->fit());
  const Scalars s = read_scalars(t.file("part"));
  REQUIRE(s.count("train/loss"));
  CHECK(s.at("train/loss").size() == 3);
  CHECK(s.at("train/loss").at(3) == static_cast<float>(tr->history()[2].loss));
  check_history_matches_events(t.file("part"), 3);
}
