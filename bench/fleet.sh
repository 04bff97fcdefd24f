#!/usr/bin/env bash
# Fleet benchmark on loopback with real processes: `firmchain demo` starts anvil, a repository node and N device
# nodes, publishes release 1 (a full 8 MiB image) and release 2 (a patch), and reports for each release
#   - the time from the publish transaction's inclusion (POST /publish returns with the receipt) to the moment
#     the last device's /status shows the release installed (status is polled every 100 ms),
#   - the bytes the repository uploaded for it, divided by the payload size.
# Medians of 3 runs for N = 3 and N = 10, with a 1 MiB patch (1 MiB of new, incompressible data per release)
# and with a tiny patch (a 4 KiB code change).
#
#   bash bench/fleet.sh          # writes bench/results/fleet.md (work files in bench/work/fleet)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/bench/work/fleet
results=$root/bench/results/fleet.md
rm -rf "$work" && mkdir -p "$work"
say() { printf '[bench] %s\n' "$*" >&2; }

say "building firmchain (bench profile)"
cargo build --quiet --profile bench --locked --bin firmchain
fc=$root/target/release/firmchain
[ -x "$root/target/bench/firmchain" ] && fc=$root/target/bench/firmchain

rows=()
for change in 1024 0; do
  for n in 3 10; do
    for run in 1 2 3; do
      say "N=$n change=${change} KiB run $run"
      "$fc" --json demo --devices "$n" --size-mib 8 --change-kib "$change" --dir "$work/n$n-c$change-r$run" \
        >"$work/n$n-c$change-r$run.json"
    done
    rows+=("$(python3 - "$work" "$n" "$change" <<'EOF'
import json, statistics, sys
work, n, change = sys.argv[1], sys.argv[2], sys.argv[3]
runs = [json.load(open(f"{work}/n{n}-c{change}-r{r}.json")) for r in (1, 2, 3)]
def med(rel, f):
    return statistics.median(f(run["releases"][rel]) for run in runs)
cells = []
for rel in (0, 1):
    kind = runs[0]["releases"][rel]["kind"]
    payload = runs[0]["releases"][rel]["payload_bytes"]
    t = med(rel, lambda r: r["converged_seconds"])
    ratio = med(rel, lambda r: r["repository_uploaded_bytes"] / max(r["payload_bytes"], 1))
    cells.append(f"{kind} {payload / 1048576:.2f} MiB | {t:.2f} s | {ratio:.2f}×" if payload >= 65536
                 else f"{kind} {payload} B | {t:.2f} s | {ratio:.2f}×")
print(f"| {n} | {change} KiB | " + " | ".join(cells) + " |")
EOF
)")
  done
done

{
  echo "# Fleet benchmark"
  echo
  echo "\`bash bench/fleet.sh\` on $(nproc) cores, $(date -u +%Y-%m-%d). Real processes on loopback: anvil (automine),"
  echo "one repository node, N device nodes in rpc mode polling every second; 8 MiB sample firmware. Time: from"
  echo "the publish transaction's inclusion to the last device installed (status polled every 100 ms). Upload:"
  echo "bytes the repository served for the release ÷ the payload. Medians of 3 runs."
  echo
  echo "| N | new data per release | release 1 | time | repository upload ÷ payload | release 2 | time | repository upload ÷ payload |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Targets: under 2 s from inclusion to the last of N = 10 devices installed; repository upload under 2× the"
  echo "patch at N = 10."
} >"$results"
say "wrote $results"
cat "$results"
