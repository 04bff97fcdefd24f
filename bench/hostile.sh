#!/usr/bin/env bash
# Peak RSS of a serving `firmchain p2p serve` process under hostile peers (real processes over loopback):
# 8 streams x 4,096 duplicate wants, 64 peers fetching at once, a DontHave flood, 100k provider records.
# Writes bench/results/hostile.md.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-bench}
# FC=BINARY measures a given binary; otherwise the profile is built (bench's output is target/release).
fc=${FC:-}
if [ -z "$fc" ]; then
  cargo build --quiet --profile "$profile" --locked --bin firmchain
  fc=${CARGO_TARGET_DIR:-target}/$([ "$profile" = dev ] && echo debug || { [ "$profile" = bench ] && echo release || echo "$profile"; })/firmchain
fi
load=$(cut -d' ' -f1 /proc/loadavg)
out=$(FIRMCHAIN_BIN=$fc cargo nextest run --profile default -p firmchain-tests --run-ignored only \
  serving_process_peak_rss_under_attacks --no-capture 2>&1 | grep -E '^\||^\(' || true)
{
  echo "# Serving under attack"
  echo
  echo "\`bash bench/hostile.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores, firmchain built with profile $profile${FC:+ (FC=$FC)}, commit $(git rev-parse --short HEAD); load average $load at the start, $(cut -d' ' -f1 /proc/loadavg) at the end)."
  echo "The serving node is a \`firmchain p2p serve\` child process with a 16 MiB release (4 MiB for the 64 fetchers); VmHWM from /proc."
  echo "Target: growth under 32 MiB for each attack."
  echo
  echo "$out"
} > bench/results/hostile.md
cat bench/results/hostile.md
