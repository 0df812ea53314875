#!/usr/bin/env bash
# Installs the real peers the tests talk to, when they are missing:
# - prometheus (and promtool), from Debian's packages, for tests/prometheus_alert.rs;
# - chromium, from Debian's packages, and playwright-core, from npm (the
#   version crates/ui/e2e/package-lock.json pins; it downloads no browser),
#   for tests/ui_browser.rs.
# Idempotent; CI (.ci/run) calls it before the tests. Needs root or sudo for apt.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  echo "installing ${missing[*]} from Debian's packages" >&2
  $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
    || { $sudo apt-get update -qq && $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
  # The prometheus package may start a system-wide server on :9090; the tests start their own.
  if pgrep -x prometheus >/dev/null 2>&1; then
    $sudo pkill -x prometheus || true
  fi
fi
e2e=crates/ui/e2e
if [ ! -d "$e2e/node_modules/playwright-core" ]; then
  command -v npm >/dev/null || { echo "npm is missing: the browser tests need Node.js and npm" >&2; exit 1; }
  echo "installing playwright-core from npm into $e2e" >&2
  npm ci --prefix "$e2e" --no-audit --no-fund --loglevel=error >/dev/null
fi
