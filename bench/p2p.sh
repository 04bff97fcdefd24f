#!/usr/bin/env bash
# P2P benchmark over loopback with real processes: `firmchain p2p serve` providers and one `firmchain p2p get`.
#   - throughput of fetching a 64 MiB file (a 257-block DAG) from 1 and from 4 providers (median of 9 runs;
#     the fetch time that `get` reports, from the first want to the last verified block stored),
#   - latency of fetching a single 256 KiB block (median of 20 runs),
#   - peak RSS of the fetching process (GNU time), which also reassembles and writes the file.
#
#   bash bench/p2p.sh            # writes bench/results/p2p.md (work files in bench/work/p2p)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/bench/work/p2p
results=$root/bench/results/p2p.md
rm -rf "$work" && mkdir -p "$work"
say() { printf '[bench] %s\n' "$*" >&2; }
dpkg -s time >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq time >/dev/null; }

say "building firmchain (bench profile)"
cargo build --quiet --profile bench --locked --bin firmchain
fc=$root/target/release/firmchain
[ -x "$root/target/bench/firmchain" ] && fc=$root/target/bench/firmchain
export FIRMCHAIN_LOG=error

head -c $((64 * 1024 * 1024)) /dev/urandom >"$work/64m.bin"
head -c $((256 * 1024)) /dev/urandom >"$work/256k.bin"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

serve() { # file index -> prints the first multiaddr; sets ROOT
  local out=$work/serve-$2.json
  "$fc" --json p2p serve "$1" --data "$work/provider-$2" --listen /ip4/127.0.0.1/tcp/0 >"$out" 2>/dev/null < /dev/null &
  pids+=($!)
  for _ in $(seq 600); do [ -s "$out" ] && break; sleep 0.1; done
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['root'], d['addrs'][0])" "$out"
}

get() { # cid out-json peers... ; prints "seconds maxrss_kib"
  local cid=$1 json=$2; shift 2
  local args=()
  for a in "$@"; do args+=(--peer "$a"); done
  /usr/bin/time -f '%M' -o "$work/time" "$fc" --json p2p get "$cid" "${args[@]}" -o "$work/got.bin" >"$json"
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['seconds'])" "$json" | tr '\n' ' '
  cat "$work/time"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

say "starting 4 providers of a 64 MiB file"
addrs=()
for i in 1 2 3 4; do
  read -r cid64 addr < <(serve "$work/64m.bin" "$i")
  addrs+=("$addr")
done

runs() { # n peers... -> lines "seconds rss"
  local n=$1; shift
  for _ in $(seq "$n"); do get "$cid64" "$work/get.json" "$@"; cmp -s "$work/got.bin" "$work/64m.bin" || { say "fetched bytes differ"; exit 1; }; done
}
say "64 MiB from 1 provider"
one=$(runs 9 "${addrs[0]}")
say "64 MiB from 4 providers"
four=$(runs 9 "${addrs[@]}")
peers_used=$(python3 -c "import json; print(len(json.load(open('$work/get.json'))['peers']))")

say "256 KiB single block"
read -r cid256 addr256 < <(serve "$work/256k.bin" 9)
lat=$(for _ in $(seq 20); do get "$cid256" "$work/get1.json" "$addr256"; done)

mib=64
t1=$(echo "$one" | awk '{print $1}' | median)
t4=$(echo "$four" | awk '{print $1}' | median)
r1=$(echo "$one" | awk '{print $2}' | sort -n | tail -1)
r4=$(echo "$four" | awk '{print $2}' | sort -n | tail -1)
l=$(echo "$lat" | awk '{print $1}' | median)

python3 - "$results" "$t1" "$t4" "$r1" "$r4" "$l" "$peers_used" <<'EOF'
import sys, platform, os
out, t1, t4, r1, r4, lat, used = sys.argv[1], *map(float, sys.argv[2:7]), sys.argv[7]
cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
lines = [
    "# P2P fetch benchmark", "",
    f"`bash bench/p2p.sh` on {os.cpu_count()} cores ({cpu}), loopback TCP + noise + yamux, bench profile.", "",
    "| case | median fetch time | throughput | fetcher peak RSS |",
    "|---|---|---|---|",
    f"| 64 MiB from 1 provider | {t1:.3f} s | {64 / t1:.0f} MiB/s | {r1 / 1024:.1f} MiB |",
    f"| 64 MiB from 4 providers ({used} delivered) | {t4:.3f} s | {64 / t4:.0f} MiB/s | {r4 / 1024:.1f} MiB |",
    f"| one 256 KiB block | {lat * 1000:.2f} ms | | |",
    "",
    "Fetch time is what `firmchain p2p get` reports: from the first want to the last block verified against its CID",
    "and stored durably in the blockstore (redb). Peak RSS is the whole `get` process (GNU time), including the",
    "reassembly of the file. Providers are separate `firmchain p2p serve` processes on the same machine.",
]
open(out, 'w').write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
