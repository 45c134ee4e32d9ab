// `rzoo data fetch`: public datasets downloaded from their publishers, checked against pinned
// checksums and unpacked into the data folder, with a dataset config beside them. The catalogue
// is configs/data-sources.yaml (every field documented there); --sources FILE adds entries or
// changes fields of built-in ones.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rzoo {

class Logger;

struct DataSource {
  std::string name;         // what `rzoo data fetch NAME` takes
  std::string url;          // the publisher's URL
  std::string sha256, md5;  // pinned digest of the downloaded file (one of them)
  int64_t bytes = 0;        // its size; 0 = unknown
  std::string folder;       // the folder the archive unpacks to
  std::string format;       // dataset.format of the config written beside it
  std::map<std::string, std::string> config;  // more dataset.* keys: YAML text of each value
  std::string description, license;
};

// The catalogue: `builtin` (configs/data-sources.yaml), then `user` ("" = none) adding entries or
// changing fields. Errors name the file, the entry and the field.
std::vector<DataSource> load_data_sources(const std::string& builtin, const std::string& user = "");
// The entry named `name`; an unknown name fails listing the known ones.
const DataSource& find_data_source(const std::vector<DataSource>& sources, const std::string& name);

struct FetchOptions {
  std::string dir;          // the data folder; "" = data_home() (core/config.h)
  bool force = false;       // fetch again over a copy already there
  bool progress = true;     // a progress bar (the download tool's own) when stderr is a terminal
};

struct FetchResult {
  std::string folder;   // DIR/<folder>: the unpacked data
  std::string config;   // DIR/<name>.yaml: its dataset config
  bool already = false; // it was there already (checked by its stamp), nothing downloaded
};

// Downloads (curl, else wget) to a temporary file in the data folder, checks its size and digest,
// unpacks it (zip: unzip; tar, tar.gz, tgz, tar.bz2, tar.xz: tar; anything else is copied) into a
// temporary folder, and renames the result into place, then writes the dataset config
// atomically. A failure at any step removes what it made: no half-unpacked folder, no partial
// file. Temporary files of fetches that died are removed first.
FetchResult fetch_data(const DataSource& source, const FetchOptions& options, Logger& log);

}  // namespace rzoo
