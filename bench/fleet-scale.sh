#!/usr/bin/env bash
# Fleet benchmark at scale, real processes on loopback (`firmchain demo`: anvil, one repository node, N device
# nodes, release 1 = a full 8 MiB image, release 2 = a patch with 1 MiB of new data):
#   - N = 20 over ROUNDS rounds (a fresh fleet each): how many device fetches waited for a progress timeout
#     (a peer holding wants that stayed silent until it was asked again; target none), and p50/p99 of the
#     time from the publish transaction's inclusion to the last device's install;
#   - N = 50 and N = 100: repository upload ÷ payload (target ≤ 1.5×) and time to the last install
#     (target < 1.5 s).
#
#   bash bench/fleet-scale.sh [ROUNDS]   # default 20; writes bench/results/fleet-scale.md (work in bench/work)
#   SUMMARY_ONLY=1 bash bench/fleet-scale.sh   # rewrite the results from the runs already in bench/work
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${1:-20}
work=$root/bench/work/fleet-scale
results=$root/bench/results/fleet-scale.md
say() { printf '[bench] %s\n' "$*" >&2; }
if [ -z "${SUMMARY_ONLY:-}" ]; then
rm -rf "$work" && mkdir -p "$work"

# FC=BINARY measures a given binary; otherwise the bench profile is built (its output is target/release).
fc=${FC:-}
if [ -z "$fc" ]; then
  say "building firmchain (bench profile)"
  cargo build --quiet --profile bench --locked --bin firmchain
  fc=$root/target/release/firmchain
fi

run() { # NAME DEVICES
  if ! "$fc" --json demo --devices "$2" --size-mib 8 --change-kib 1024 --dir "$work/$1" >"$work/$1.json" \
    2>"$work/$1.err"; then
    say "$1 failed: $(tail -3 "$work/$1.err")"
    echo '{"failed": true}' >"$work/$1.json"
  fi
  rm -rf "$work/$1"
}
for n in 50 100; do say "N=$n"; run "n$n" "$n"; done
for r in $(seq 1 "$rounds"); do say "N=20 round $r/$rounds"; run "n20-r$r" 20; done
fi

python3 - "$work" "$rounds" "$(nproc)" "$(date -u +%Y-%m-%d)" >"$results" <<'PY'
import json, sys
work, rounds, cores, day = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
import os
def load(name):
    path = f"{work}/{name}.json"
    return json.load(open(path)) if os.path.exists(path) else None
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]
print("# Fleet benchmark at scale\n")
print(f"`bash bench/fleet-scale.sh {rounds}` on {cores} cores, {day}, bench profile (release with thin LTO).")
print("`firmchain demo` with real processes on loopback: anvil (automine), one repository node, N device nodes in")
print("rpc mode polling every second; 8 MiB sample firmware, 1 MiB of new data per release. Time: from the publish")
print("transaction's inclusion to the last device installed (status polled every 100 ms). A timeout: a device")
print("fetch in which a peer holding wants stayed silent until they were asked again (`last_fetch.timeouts`).\n")
print(f"## N = 20, {len([1 for r in range(1, rounds + 1) if load(f'n20-r{r}') is not None])} rounds (a fresh fleet each)\n")
print("| release | rounds | failed | device fetches | fetches that waited for a timeout | p50 last install | p99 last install | upload ÷ payload (max) |")
print("|---|---|---|---|---|---|---|---|")
runs = [x for x in (load(f"n20-r{r}") for r in range(1, rounds + 1)) if x is not None]
ok = [r for r in runs if not r.get("failed")]
for rel in (0, 1):
    rs = [r["releases"][rel] for r in ok]
    if not rs:
        continue
    fetches = [d.get("fetched") or {} for x in rs for d in x["devices"]]
    waited = sum(1 for f in fetches if f.get("timeouts", 0) > 0)
    t = [x["converged_seconds"] for x in rs]
    up = max(x["repository_uploaded_bytes"] / max(x["payload_bytes"], 1) for x in rs)
    print(f"| {rel + 1} ({rs[0]['kind']}) | {len(runs)} | {len(runs) - len(ok)} | {len(fetches)} | {waited} | {pct(t, 50):.2f} s | {pct(t, 99):.2f} s | {up:.2f}× |")
print("\n## N = 50 and N = 100\n")
print("| N | release | time to the last install | repository upload ÷ payload | fetches that waited for a timeout |")
print("|---|---|---|---|---|")
for n in (50, 100):
    r = load(f"n{n}")
    if r is None:
        print(f"| {n} | not run | | | |")
        continue
    if r.get("failed"):
        print(f"| {n} | failed (see bench/work/fleet-scale/n{n}.err) | | | |")
        continue
    for x in r["releases"]:
        waited = sum(1 for d in x["devices"] if (d.get("fetched") or {}).get("timeouts", 0) > 0)
        print(f"| {n} | {x['sequence']} ({x['kind']}, {x['payload_bytes'] / 1048576:.2f} MiB) | {x['converged_seconds']:.2f} s | {x['repository_uploaded_bytes'] / max(x['payload_bytes'], 1):.2f}× | {waited} |")
print("\nTargets: no device waits for a timeout; upload ≤ 1.5× the payload and the last install < 1.5 s after inclusion.")
PY
say "wrote $results"
cat "$results"
