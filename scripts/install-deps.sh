#!/usr/bin/env bash
# Installs the Debian 12 packages rzoo needs, only those missing (idempotent).
set -euo pipefail
packages=(build-essential cmake ninja-build ccache libtorch-dev libyaml-cpp-dev libfmt-dev catch2
          nlohmann-json3-dev libcli11-dev libboost-math-dev
          libgloo-dev  # distributed runs: the headers of LibTorch's Gloo process group
          libopenblas0-pthread python3-torch python3-numpy
          curl unzip ca-certificates  # rzoo data fetch: downloads and unpacks
          libjs-chart.js chromium)  # rzoo report: Chart.js inlined in its pages; its test renders them
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
