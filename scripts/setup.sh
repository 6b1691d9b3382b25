#!/usr/bin/env bash
# Idempotent set-up of everything Hangar needs on Debian 12, as root:
# apt packages, npm dependencies, the TypeScript build, the guest kernel and
# init. Each component adds its own steps as scripts/setup.d/NN-name.sh; they
# are sourced in order and may call apt_need to declare packages.
set -euo pipefail
HANGAR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export HANGAR_ROOT
cd "$HANGAR_ROOT"

APT_PACKAGES=()
apt_need() { APT_PACKAGES+=("$@"); }

# Packages every part of Hangar uses.
apt_need ca-certificates git build-essential python3 sqlite3
# Bundles the CLI into one file at build time (faster start; scripts/bundle-cli.mjs).
apt_need esbuild

SETUP_STEPS=()
for step in "$HANGAR_ROOT"/scripts/setup.d/*.sh; do
  [ -e "$step" ] || continue
  SETUP_STEPS+=("$step")
done

# Phase 1: every step declares its packages (steps define setup_<name> functions).
for step in "${SETUP_STEPS[@]}"; do
  # shellcheck source=/dev/null
  source "$step"
done

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node dependencies and the build.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
# `hangar` on PATH, pointing at this checkout.
if [ -w /usr/local/bin ] && [ "$(readlink -f /usr/local/bin/hangar 2>/dev/null)" != "$HANGAR_ROOT/bin/hangar" ]; then
  ln -sf "$HANGAR_ROOT/bin/hangar" /usr/local/bin/hangar
fi

# Phase 2: each step's own work (guest kernel, init, base images...).
for fn in $(declare -F | awk '{print $3}' | grep '^setup_' | sort); do
  "$fn"
done
echo "setup: done"
