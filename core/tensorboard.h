// TensorBoard event files without TensorFlow or protobuf: the TFRecord framing and the few
// `Event` fields a scalar needs, encoded by hand.
//
// A record: uint64 little-endian length, masked CRC32C of those 8 bytes, the data, masked CRC32C
// of the data (mask: ((crc >> 15) | (crc << 17)) + 0xa282ead8). The data is an `Event` message:
// wall_time = 1 (double), step = 2 (int64), file_version = 3 (string, "brain.Event:2" in the
// file's first record), summary = 5 (Summary{ repeated Value value = 1 }, Value{ tag = 1 string,
// simple_value = 2 float }), session_log = 6 (SessionLog{ status = 1 }, START = 1).
//
// The file is an append-only log, not an atomic file: records are buffered and appended, then
// fsynced, at flush(); a process killed mid-append leaves a torn last record, which TensorBoard's
// reader skips. A write error (a full disk) must not stop training: the writer reports it once
// through `warn` and writes nothing more; no method throws.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace rzoo {

class EventWriter {
 public:
  using Warn = std::function<void(const std::string& message)>;  // default: "rzoo: WARNING: ..." on stderr

  // Creates `events.out.tfevents.<unix seconds>.<hostname>` in `folder` (TensorBoard's name; with
  // ".1", ".2", ... appended when that name is taken, so that a resumed run started within the
  // same second gets a file of its own: TensorBoard reads every file of the folder, in name order).
  explicit EventWriter(const std::string& folder, Warn warn = {});
  // Appends to the file `path` itself (created when missing), for tests and custom layouts.
  static EventWriter to_file(const std::string& path, Warn warn = {});
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  void scalar(const std::string& tag, int64_t step, double value);  // stored as a float, as TensorBoard does
  // A SessionLog START at `step`: TensorBoard then drops the events of earlier files with a step
  // >= `step` (those a killed run wrote past its last checkpoint), so a resumed run shows each
  // step once.
  void session_start(int64_t step);
  // Appends the buffered records and fsyncs the file.
  void flush();

  const std::string& path() const { return path_; }
  bool ok() const { return fd_ >= 0; }  // false once an error stopped the writer

 private:
  struct AppendTag {};
  EventWriter(const std::string& path, Warn warn, AppendTag);
  void record(const std::string& event);  // frames one Event into the buffer
  void stop(const std::string& doing, int err);  // warns once and closes

  std::string path_;
  Warn warn_;
  int fd_ = -1;
  std::string pending_;
};

// The TFRecord CRC mask.
inline uint32_t tfrecord_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

}  // namespace rzoo
