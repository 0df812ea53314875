#!/usr/bin/env bash
# Installs the real peers the tests talk to, from Debian's packages, when
# they are missing: prometheus (and promtool) for tests/prometheus_alert.rs.
# Idempotent; CI (.ci/run) calls it before the tests. Needs root or sudo.
set -euo pipefail
missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "installing ${missing[*]} from Debian's packages" >&2
$sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
  || { $sudo apt-get update -qq && $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
# The package may start a system-wide server on :9090; the tests start their own.
if pgrep -x prometheus >/dev/null 2>&1; then
  $sudo pkill -x prometheus || true
fi
