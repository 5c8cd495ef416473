#!/usr/bin/env bash
# Installs every Debian package that MMSB's build, tests, samples and demo need.
# Idempotent: does nothing (and prints nothing) when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libzstd-dev zstd
  flatbuffers-compiler libflatbuffers-dev
  libcli11-dev catch2
  libxxhash-dev
  libglfw3-dev libimgui-dev libstb-dev xvfb xauth
  libbox2d-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
