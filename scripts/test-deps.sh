#!/usr/bin/env bash
# Installs what the tests need beyond Go, from Debian's packages: chromium, for the
# console's browser tests (console.TestConsoleInBrowser drives it headless), and systemd,
# whose systemd-analyze verifies the units in deploy/systemd. Does nothing when they are
# there. (Helm is built from the Go module proxy by `go tool helm`.)
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "test-deps: installing ${missing[*]} needs root (or sudo)" >&2; exit 1; }
  sudo=sudo
fi
echo "test-deps: installing Debian's ${missing[*]} for the tests" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
