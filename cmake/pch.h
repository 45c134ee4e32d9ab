// Private precompiled header of rzoo's targets (never included by hand; see CMakeLists.txt).
// Public headers include only the small LibTorch headers they need.
#pragma once
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>
#include <fmt/core.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>
