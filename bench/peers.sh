#!/usr/bin/env bash
# Peers-mode fleet benchmark on loopback with real processes: anvil, the beacon harness, one repository in light
# mode, and 10 devices, first all in `peers` mode (no RPC: the committee chain, head and release proofs reach them
# over libp2p from the repository, which builds them after each 1 s poll), then the same fleet in `light` mode
# (each device syncs its own light client from the harness and proves the index with anvil's RPC). Reports the
# time from the publish transaction's inclusion (POST /publish returns with the receipt) to the last device's
# install (its /status last_install.at_ms), median of 3 runs, 2 MiB image.
#
#   bash bench/peers.sh          # writes bench/results/peers.md
set -euo pipefail
cd "$(dirname "$0")/.."
results=bench/results/peers.md
runs=()
for run in 1 2 3; do
  printf '[bench] run %s\n' "$run" >&2
  runs+=("$(cargo nextest run --locked -p firmchain --test peers_bench --run-ignored only --no-capture 2>/dev/null \
    | grep '^BENCH ' | sed 's/^BENCH //')")
done
printf '%s\n' "${runs[@]}" | python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin.read().split() if l.startswith("{")]
by = {}
for r in rows:
    by.setdefault(r["mode"], []).append(r["inclusion_to_last_install_ms"])
out = ["# Peers-mode fleet benchmark (issue 16)", "",
       "`bash bench/peers.sh` on 2 cores. Real processes on loopback: anvil (a block every 500 ms), the beacon",
       "harness (one-second slots, 32-key committee), one repository in light mode, 10 devices; 2 MiB image,",
       "release 1 (full). Time: from the publish transaction'"'"'s inclusion to the last device'"'"'s install. Median of",
       "%d runs (each run: peers mode, then light mode)." % len(by.get("peers", [])), "",
       "| devices | mode | inclusion → last install (median) | runs (ms) |", "|---|---|---|---|"]
for mode in ("peers", "light"):
    v = by.get(mode, [])
    if v:
        out.append("| 10 | %s | %.2f s | %s |" % (mode, statistics.median(v) / 1000, ", ".join(map(str, v))))
print("\n".join(out))
' > "$results"
cat "$results"
