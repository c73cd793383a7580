#!/usr/bin/env bash
# Installs everything faultline needs to build and test, from Debian 12 (bookworm) packages only.
# Idempotent: packages already present are skipped; apt is not touched when nothing is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git lld
  clang libclang-rt-14-dev clang-format clang-tidy
  libasio-dev libboost-dev libboost-filesystem-dev
  libnl-3-dev libnl-route-3-dev
  prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nftables libnftables-dev iptables libnetfilter-queue-dev libmnl-dev
  libfuse3-dev fuse3
  nlohmann-json3-dev libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev
  iproute2 procps psmisc e2fsprogs util-linux kmod
  python3 time
  # report.html is checked in headless Chromium (the test decodes its screenshot with zlib).
  chromium zlib1g-dev
  # `--prometheus` runs /usr/bin/prometheus itself (its own config, a free port on 127.0.0.1);
  # the package's own service, where systemd starts one, is not used.
  prometheus libcurl4-openssl-dev
  # Real Kafka clients against the brokers' Kafka listener: the librdkafka workload and kcat.
  librdkafka-dev kcat
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages (${missing[*]}); run as root" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
