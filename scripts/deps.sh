#!/usr/bin/env bash
# Install fundwatch's build, test and run dependencies (Debian 12 packages).
# Skips apt entirely when everything is already installed.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
      libevent-dev libnats-dev libsqlite3-dev sqlite3 liblua5.4-dev
      libcurl4-openssl-dev libjansson-dev libinih-dev libssl-dev libcmocka-dev
      nats-server python3 curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
