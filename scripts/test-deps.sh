#!/usr/bin/env bash
# Installs what the tests need beyond Go: Debian's chromium, for the console's browser
# tests (console.TestConsoleInBrowser drives it headless). Does nothing when it is there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "test-deps: installing chromium needs root (or sudo)" >&2; exit 1; }
  sudo=sudo
fi
echo "test-deps: installing Debian's chromium package for the browser tests" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
chromium --version >&2
