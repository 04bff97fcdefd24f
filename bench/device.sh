#!/usr/bin/env bash
# Device benchmark: what the device binary costs.
#   - size of the stripped, static binary of scripts/build-device at opt-level 3, "s" and "z" (device features:
#     no `publisher`, `quic`, `mdns`) and of the full build (default features, opt-level "s");
#   - speed of each: `firmchain apply` of the largest pair of bench/patch.sh (uv 0.13.8 -> 0.13.9, a 38 MB
#     executable) and `firmchain hash` of a 64 MiB file (hyperfine; mean ± σ), with their peak RSS (GNU time);
#   - the device's RSS in a fleet of one repository (full build) and one device (the device build) over anvil
#     (`firmchain demo --devices 1 --size-mib 64 --change-kib 2048 --device-binary ...`): idle (connected to the
#     repository, nothing to install) and the peak (VmHWM, reset before each release) through release 1 (a full
#     image) and release 2 (a patch), each fetched, verified, applied and installed.
#
#   bash bench/device.sh               # builds the four binaries (fat LTO: slow), writes bench/results/device.md
#   SKIP_BUILD=1 bash bench/device.sh  # measure the binaries already in target/device/
#   FLEET_ENV="MALLOC_ARENA_MAX=2" bash bench/device.sh   # one more fleet run with these variables
#   DEVICE=target/device/firmchain-z bash bench/device.sh # the fleet's device binary (default: firmchain-s)
#
# Every binary is built from the checkout as it is; the results file names its commit (and says when the tree
# had uncommitted changes).
#
# Needs network access to PyPI (the uv wheels); installs hyperfine and GNU time from Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/bench/work/device
results=$root/bench/results/device.md
mkdir -p "$work"
say() { printf '[bench] %s\n' "$*" >&2; }

export DEBIAN_FRONTEND=noninteractive
missing=()
for pkg in hyperfine time; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# What the results file names: this command and the commit the binaries are built from.
command="bash bench/device.sh"
for var in SKIP_BUILD DEVICE FLEET_ENV RUNS; do
  if [ -n "${!var:-}" ]; then command="$var=${!var} $command"; fi
done
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit (with uncommitted changes)"; fi

dev=$root/target/device
if [ -z "${SKIP_BUILD:-}" ]; then
  # One at a time: each is a fat-LTO build of the whole tree.
  for o in 3 s z; do
    say "device build, opt-level $o"
    OPT_LEVEL=$o OUT=$dev/firmchain-$o bash scripts/build-device
  done
  say "full build, opt-level s"
  FEATURES=default OUT=$dev/firmchain-full bash scripts/build-device
fi
full=$dev/firmchain-full
# The device binary of the fleet: the shipped profile, opt-level "s" (the build above leaves it as firmchain-s).
device=${DEVICE:-$dev/firmchain-s}
[ -x "$full" ] || { say "no $full (the repository of the fleet, and the publisher of the patch): build it first"; exit 1; }
[ -x "$device" ] || { say "no $device: build it first, or set DEVICE"; exit 1; }

# The largest pair of bench/patch.sh: the uv executable of two consecutive releases.
wheel() { # version -> path of the uv executable
  local d=$work/uv-$1
  if [ ! -d "$d" ]; then
    mkdir -p "$d.tmp"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --platform manylinux_2_17_x86_64 --python-version 3.11 "uv==$1" -d "$d.tmp"
    (cd "$d.tmp" && python3 -m zipfile -e ./*.whl .)
    mv "$d.tmp" "$d"
  fi
  compgen -G "$d/uv-*.data/scripts/uv" | head -n1
}
old=$(wheel 0.13.8)
new=$(wheel 0.13.9)
# The patch is made by this run's full build (the publisher), every run.
"$full" --quiet diff --kind patch "$old" "$new" --output "$work/uv.patch"
[ -s "$work/64mib.bin" ] || python3 -c "import random,sys; sys.stdout.buffer.write(random.Random(1).randbytes(64 << 20))" > "$work/64mib.bin"

rss() { # command... -> peak RSS in KiB
  /usr/bin/time -f '%M' -o "$work/time.txt" "$@" >/dev/null 2>&1
  cat "$work/time.txt"
}
timing() { # name command -> "mean ± sd s"
  hyperfine --style none --warmup 1 --runs "${RUNS:-5}" --export-json "$work/$1.json" "$2" >/dev/null 2>&1
  python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results'][0]; print(f\"{r['mean']:.3f} ± {r['stddev']:.3f} s\")" \
    "$work/$1.json"
}

rows=()
for v in 3 s z full; do
  bin=$dev/firmchain-$v
  [ -x "$bin" ] || { say "no $bin: skipped"; continue; }
  say "measuring $bin"
  size=$(stat -c %s "$bin")
  apply_cmd="$bin --quiet apply $old $work/uv.patch --output $work/out-$v"
  hash_cmd="$bin --quiet hash $work/64mib.bin"
  base=$(rss "$bin" --version)
  at=$(timing "apply-$v" "$apply_cmd")
  ar=$(rss $apply_cmd)
  ht=$(timing "hash-$v" "$hash_cmd")
  hr=$(rss $hash_cmd)
  cmp -s "$work/out-$v" "$new" || { say "apply with $bin did not give the new image"; exit 1; }
  features=device; [ "$v" = full ] && features="default (full)"
  level=$v; [ "$v" = full ] && level=s
  mib() { python3 -c "print(f'{$1 / 1024:.2f} MiB')"; }
  rows+=("| $level | $features | $size ($(python3 -c "print(f'{$size/1e6:.2f}')") MB) | $(mib "$base") | $at | $(mib "$ar") | $ht | $(mib "$hr") |")
done

fleet() { # name env... -> JSON of the demo
  local name=$1; shift
  rm -rf "$work/fleet-$name"
  env "$@" "$full" --json demo --devices 1 --size-mib 64 --change-kib 2048 --device-binary "$device" \
    --dir "$work/fleet-$name" > "$work/fleet-$name.json"
}
fleet_row() { # name label -> a table row
  python3 - "$work/fleet-$1.json" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
mib = lambda k: f"{k / 1024:.1f} MiB"
idle = d["idle_memory"][0]
rel = [r["devices"][0] for r in d["releases"]]
kinds = [r["kind"] for r in d["releases"]]
sizes = [r["payload_bytes"] / 1048576 for r in d["releases"]]
print(f"| {sys.argv[2]} | {mib(idle['rss_kib'])} | {mib(rel[0]['memory']['peak_kib'])} ({kinds[0]} {sizes[0]:.1f} MiB) "
      f"| {mib(rel[1]['memory']['peak_kib'])} ({kinds[1]} {sizes[1]:.1f} MiB) |")
EOF
}
say "fleet: one repository, one device ($device)"
fleet default
frows=("$(fleet_row default "defaults")")
if [ -n "${FLEET_ENV:-}" ]; then
  # shellcheck disable=SC2086
  fleet tuned $FLEET_ENV
  frows+=("$(fleet_row tuned "$FLEET_ENV")")
fi

{
  echo "# Device benchmark"
  echo
  echo "Made by \`$command\` at commit $commit on $(nproc) cores (shared with other"
  echo "work, so times are noisy), $(date -u +%Y-%m-%d), $(uname -m), Linux $(uname -r)."
  echo "Binaries: \`OPT_LEVEL=<level> bash scripts/build-device\` (static glibc, stripped, fat LTO, one codegen"
  echo "unit, panic=abort; device features: no \`publisher\`, \`quic\`, \`mdns\`) and \`FEATURES=default bash"
  echo "scripts/build-device\` (the full build). Apply: \`firmchain apply\` of uv 0.13.8 → 0.13.9 ($(stat -c %s "$new")"
  echo "bytes; patch $(stat -c %s "$work/uv.patch") bytes); hash: \`firmchain hash\` of a 64 MiB file; times by"
  echo "\`hyperfine --warmup 1 --runs ${RUNS:-5}\`, peak RSS by GNU time."
  echo
  echo "| opt-level | features | binary | \`--version\` peak RSS | apply time | apply peak RSS | hash 64 MiB | hash peak RSS |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "## Device RSS through an update"
  echo
  echo "\`firmchain demo --devices 1 --size-mib 64 --change-kib 2048 --device-binary $(realpath --relative-to="$root" "$device")\`"
  echo "(the repository is the full build): anvil, one repository, one device on loopback. Idle: VmRSS once the"
  echo "device is connected to the repository and follows the chain with nothing to install. Peak: VmHWM from"
  echo "just before the release is published until the device reports it installed (fetch, verify, apply,"
  echo "install), reset in between (\`5 > /proc/PID/clear_refs\`)."
  echo
  echo "| run | idle RSS | peak, release 1 | peak, release 2 |"
  echo "|---|---|---|---|"
  printf '%s\n' "${frows[@]}"
} > "$results.new"
# Hand-written notes below the tables (from "## Findings" on) are kept.
if [ -f "$results" ] && grep -q '^## Findings' "$results"; then
  { echo; sed -n '/^## Findings/,$p' "$results"; } >> "$results.new"
fi
mv "$results.new" "$results"
say "wrote $results"
