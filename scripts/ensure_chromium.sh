#!/usr/bin/env bash
# Make sure the headless browser of the smoke-book checks is installed before `make test` runs them.
# Present: nothing to do. Missing, and root with apt-get: install Debian's `chromium` quietly.
# Otherwise: stop with one line naming the package (exit 1). HIPAUG_NO_APT=1 forbids the install.
set -uo pipefail

have() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }
have && exit 0

if [ "${HIPAUG_NO_APT:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[hipaug] installing chromium with apt-get (the smoke-book browser checks need it)" >&2
  if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 && have; then
    exit 0
  fi
  echo "hipaug: error: 'apt-get install chromium' failed; install the package chromium, then run make test again" >&2
  exit 1
fi
echo "hipaug: error: make test needs a headless browser: install the package chromium (e.g. sudo apt-get install chromium), then run make test again" >&2
exit 1
