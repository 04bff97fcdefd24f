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
  cut -d' ' -f1 /proc/loadavg >"$work/$1.load"
  if ! "$fc" --json demo --devices "$2" --size-mib 8 --change-kib 1024 --dir "$work/$1" >"$work/$1.json" \
    2>"$work/$1.err"; then
    say "$1 failed: $(tail -3 "$work/$1.err")"
    echo '{"failed": true}' >"$work/$1.json"
  fi
  cut -d' ' -f1 /proc/loadavg >>"$work/$1.load"
  rm -rf "$work/$1"
}
for n in 50 100; do say "N=$n"; run "n$n" "$n"; done
for r in $(seq 1 "$rounds"); do say "N=20 round $r/$rounds"; run "n20-r$r" 20; done
git -C "$root" rev-parse --short HEAD >"$work/commit"
fi

python3 - "$work" "$rounds" "$(nproc)" "$(date -u +%Y-%m-%d)" >"$results" <<'PY'
import json, sys
work, rounds, cores, day = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
import os
def loads(name):
    path = f"{work}/{name}.load"
    return [float(x) for x in open(path).read().split()] if os.path.exists(path) else []
def shares(x):
    """Repository bytes that devices used, and the most one device uploaded, each over the payload."""
    devs = {d["peer_id"] for d in x["devices"]}
    repo = 0
    up = {}
    for d in x["devices"]:
        for p in (d.get("fetched") or {}).get("peers", []):
            if p["peer"] in devs:
                up[p["peer"]] = up.get(p["peer"], 0) + p["bytes"]
            else:
                repo += p["bytes"]
    pay = max(x["payload_bytes"], 1)
    return repo / pay, max(up.values(), default=0) / pay
def load(name):
    path = f"{work}/{name}.json"
    return json.load(open(path)) if os.path.exists(path) else None
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]
print("# Fleet benchmark at scale\n")
commit = open(f"{work}/commit").read().strip() if os.path.exists(f"{work}/commit") else "?"
print(f"`bash bench/fleet-scale.sh {rounds}` on {cores} cores, {day}, bench profile (release with thin LTO), commit {commit}.")
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
all_loads = [v for r in range(1, rounds + 1) for v in loads(f"n20-r{r}")]
if all_loads:
    print(f"\nLoad average (1 min) at the start and end of the N = 20 rounds: {min(all_loads):.1f} to {max(all_loads):.1f}.")
print("\n## N = 50 and N = 100\n")
print("| N | release | time to the last install | repository upload ÷ payload | of which devices used | most one device uploaded ÷ payload | fetches that waited for a timeout | load average before, after |")
print("|---|---|---|---|---|---|---|---|")
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
        used, top = shares(x)
        la = ", ".join(f"{v:.1f}" for v in loads(f"n{n}"))
        print(f"| {n} | {x['sequence']} ({x['kind']}, {x['payload_bytes'] / 1048576:.2f} MiB) | {x['converged_seconds']:.2f} s | {x['repository_uploaded_bytes'] / max(x['payload_bytes'], 1):.2f}× | {used:.2f}× | {top:.2f}× | {waited} | {la} |")
print("\nTargets: no device waits for a timeout; upload ≤ 1.5× the payload and the last install < 1.5 s after inclusion.")
PY
say "wrote $results"
cat "$results"
