#!/usr/bin/env bash
# Installs the Debian packages tfm's build needs, when they are missing (Debian 12, as root
# or with sudo). Sourced or run by scripts/main.sh and scripts/test.sh.
set -euo pipefail
need=(cmake g++ make pkg-config libboost-test-dev libbenchmark-dev libopenblas-dev python3
      libpcre2-dev libutf8proc-dev libxxhash-dev nlohmann-json3-dev)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "tfm: installing missing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
