#!/usr/bin/env bash
# Patch benchmark: firmchain's patches against bsdiff, xdelta3, zstd --patch-from and HDiffPatch's hdiffz, on
# consecutive releases of real native binaries (npm and PyPI packages; x86-64 and AArch64), one source tarball
# pair and one pair of ext4 root-filesystem images made from two versions of Debian packages, all measured in
# the same run. Also measures diff time (ours and hdiffz's), apply time and peak RSS (VmHWM), and apply RSS on
# a 64 MiB image.
#
#   bash bench/patch.sh            # writes bench/results/patch.md (work files in bench/work/)
#   FC=path/to/firmchain bash bench/patch.sh   # measure a given binary instead of building one
#   ONLY="uv rootfs-ext4" bash bench/patch.sh  # remeasure some pairs, keep the other rows of the last run
#
# Needs network access to the npm registry, PyPI and Debian; installs bsdiff, xdelta3, zstd, e2fsprogs and
# GNU time. The Debian pair takes, per package, the oldest and the newest version that `apt-cache madison` lists
# (bookworm, bookworm-updates, bookworm-security): the archive moves, so the results file names the versions.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/bench/work
results=$root/bench/results/patch.md
mkdir -p "$work/pkgs" "$work/pairs" "$work/out"
say() { printf '[bench] %s\n' "$*" >&2; }

export DEBIAN_FRONTEND=noninteractive
missing=()
for pkg in bsdiff xdelta3 zstd time e2fsprogs; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# HDiffPatch's hdiffz, built from the sources in its PyPI sdist (zstd plugin only).
hdiffz=$work/hdiffz
if [ ! -x "$hdiffz" ]; then
  say "building hdiffz from the hdiffpatch sdist"
  rm -rf "$work/hdiffpatch" && mkdir -p "$work/hdiffpatch"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary hdiffpatch \
    hdiffpatch==2.6.0 -d "$work/hdiffpatch"
  tar -xzf "$work"/hdiffpatch/hdiffpatch-2.6.0.tar.gz -C "$work/hdiffpatch"
  make -s -C "$work/hdiffpatch/hdiffpatch-2.6.0/hdiffpatch/_c_src/HDiffPatch" -j"$(nproc)" \
    DIR_DIFF=0 LDEF=0 LZMA=0 ZLIB=0 VCD=0 BSD=0 BZIP2=0 ZSTD=1 MT=1 hdiffz >/dev/null 2>&1
  cp "$work/hdiffpatch/hdiffpatch-2.6.0/hdiffpatch/_c_src/HDiffPatch/hdiffz" "$hdiffz"
fi

if [ -n "${FC:-}" ]; then
  fc=$FC
else
  say "building firmchain (bench profile)"
  cargo build --quiet --profile bench --locked --bin firmchain
  target=${CARGO_TARGET_DIR:-$root/target}
  fc=$target/release/firmchain
  [ -x "$target/bench/firmchain" ] && fc=$target/bench/firmchain
fi

# name | source | package | old version | new version | file inside the package
pairs=(
  "parcel-watcher|npm|@parcel/watcher-linux-x64-glibc|2.5.0|2.5.1|package/watcher.node"
  "rollup|npm|@rollup/rollup-linux-x64-gnu|4.68.7|4.68.8|package/rollup.linux-x64-gnu.node"
  "lightningcss|npm|lightningcss-linux-x64-gnu|1.32.0|1.33.0|package/lightningcss.linux-x64-gnu.node"
  "esbuild|npm|@esbuild/linux-x64|0.28.1|0.28.2|package/bin/esbuild"
  "orjson|pypi|orjson|3.12.0|3.13.0|orjson/orjson.cpython-311-x86_64-linux-gnu.so"
  "biome|npm|@biomejs/cli-linux-x64|1.9.3|1.9.4|package/biome"
  "ruff|pypi|ruff|0.17.4|0.17.5|ruff-*.data/scripts/ruff"
  "cython-src|sdist|cython|3.3.0|3.3.1|tar"
  "rollup-arm64|npm|@rollup/rollup-linux-arm64-gnu|4.68.7|4.68.8|package/rollup.linux-arm64-gnu.node"
  "orjson-arm64|pypi-aarch64|orjson|3.12.0|3.13.0|orjson/orjson.cpython-311-aarch64-linux-gnu.so"
  "biome-arm64|npm|@biomejs/cli-linux-arm64|1.9.3|1.9.4|package/biome"
  "uv|pypi|uv|0.13.8|0.13.9|uv-*.data/scripts/uv"
  "rootfs-ext4|debian|libssl3 openssl libcurl4 curl tzdata|oldest|newest|ext4"
)

fetch() { # source package version file -> path of the extracted file
  local src=$1 pkg=$2 ver=$3 file=$4 dir
  if [ "$src" = debian ]; then # oldest|newest -> one version per package
    local p v=()
    for p in $pkg; do
      if [ "$ver" = oldest ]; then v+=("$(apt-cache madison "$p" | awk '{print $3}' | sort -V | head -n1)")
      else v+=("$(apt-cache madison "$p" | awk '{print $3}' | sort -V | tail -n1)"); fi
    done
    ver="${v[*]}"
  fi
  dir=$work/pkgs/$(echo "$pkg" | tr '/@ ' '___')-$(echo "$ver" | tr ' ~+' '_..')
  [ "$src" = pypi-aarch64 ] && dir=$dir-aarch64
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir.tmp"
    case $src in
      npm)
        (cd "$dir.tmp" && npm pack --silent "$pkg@$ver" >/dev/null && tar -xzf ./*.tgz) ;;
      pypi|pypi-aarch64)
        local platform=manylinux_2_17_x86_64
        [ "$src" = pypi-aarch64 ] && platform=manylinux_2_17_aarch64
        python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
          --platform "$platform" --python-version 3.11 "$pkg==$ver" -d "$dir.tmp"
        (cd "$dir.tmp" && python3 -m zipfile -e ./*.whl .) ;;
      debian) # packages and versions are space-separated lists: one ext4 image of their files
        local names=($pkg) versions=($ver) i
        mkdir -p "$dir.tmp/root"
        for i in "${!names[@]}"; do
          (cd "$dir.tmp" && apt-get download -qq "${names[$i]}=${versions[$i]}" >/dev/null)
        done
        for deb in "$dir.tmp"/*.deb; do dpkg-deb -x "$deb" "$dir.tmp/root"; done
        # Fixed UUID, hash seed and time: the image depends only on the packages' contents.
        E2FSPROGS_FAKE_TIME=1700000000 mke2fs -q -F -t ext4 -b 4096 -N 4096 -O ^has_journal,^metadata_csum \
          -U 6f0b2a9c-1d3e-4c5b-9a7f-0e1d2c3b4a59 \
          -E hash_seed=1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0,root_owner=0:0,lazy_itable_init=0,nodiscard \
          -d "$dir.tmp/root" "$dir.tmp/image.ext4" 32M >/dev/null
        rm -rf "$dir.tmp/root" ;;
      sdist)
        python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary=:all: \
          "$pkg==$ver" -d "$dir.tmp"
        (cd "$dir.tmp" && gzip -dc ./*.tar.gz > source.tar) ;;
    esac
    mv "$dir.tmp" "$dir"
  fi
  case $file in
    tar) echo "$dir/source.tar" ;;
    ext4) echo "$dir/image.ext4" ;;
    *) compgen -G "$dir/$file" | head -n1 ;;
  esac
}

fetch_versions() { # packages oldest|newest -> "pkg=version ..."
  local p out=()
  for p in $1; do
    if [ "$2" = oldest ]; then out+=("$p=$(apt-cache madison "$p" | awk '{print $3}' | sort -V | head -n1)")
    else out+=("$p=$(apt-cache madison "$p" | awk '{print $3}' | sort -V | tail -n1)"); fi
  done
  echo "${out[*]}"
}

measure() { # out-file command... -> "seconds peak_kib"
  local t=$work/out/time.txt
  /usr/bin/time -f '%e %M' -o "$t" "$@" >/dev/null 2>&1 || { echo "fail fail"; return; }
  cat "$t"
}

tsv=$work/out/results.tsv
# ONLY="name ..." remeasures those pairs and keeps the other rows of the last run.
if [ -n "${ONLY:-}" ] && [ -s "$tsv" ]; then
  keep=$(mktemp)
  head -n1 "$tsv" > "$keep"
  tail -n +2 "$tsv" | while IFS= read -r row; do
    skip=
    for n in $ONLY; do [[ $row == "$n ("* ]] && skip=1; done
    [ -z "$skip" ] && printf '%s\n' "$row"
  done >> "$keep"
  mv "$keep" "$tsv"
else
  printf 'pair\told\tnew\tours\tbsdiff\txdelta3\tzstd\thdiffz\tdiff_s\thdiffz_s\tapply_s\tapply_kib\tfull\n' > "$tsv"
fi
for spec in "${pairs[@]}"; do
  IFS='|' read -r name src pkg v1 v2 file <<<"$spec"
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
  say "$name: $pkg $v1 -> $v2"
  old=$(fetch "$src" "$pkg" "$v1" "$file")
  new=$(fetch "$src" "$pkg" "$v2" "$file")
  o=$work/out/$name
  read -r diff_s _ < <(measure "$fc" --quiet diff "$old" "$new" -o "$o.fc" --kind patch)
  "$fc" --quiet diff "$old" "$new" -o "$o.full" --kind full >/dev/null
  read -r apply_s apply_kib < <(measure "$fc" --quiet apply "$old" "$o.fc" -o "$o.applied")
  cmp -s "$o.applied" "$new" || { say "$name: applied result differs from the new file"; exit 1; }
  # The other tools' results depend only on the pair: kept from an earlier run (REDO=1 to remake them).
  if [ -n "${REDO:-}" ] || [ ! -s "$o.hdiffz.time" ] || [ "$(cat "$o.pair" 2>/dev/null)" != "$old $new" ]; then
    bsdiff "$old" "$new" "$o.bsdiff"
    xdelta3 -e -9 -S djw -f -s "$old" "$new" "$o.xdelta3"
    zstd -q -f -19 --patch-from="$old" "$new" -o "$o.zstd"
    measure "$hdiffz" -m-6 -SD -c-zstd-21-24 -f "$old" "$new" "$o.hdiffz" > "$o.hdiffz.time"
    echo "$old $new" > "$o.pair"
  fi
  read -r hdiffz_s _ < "$o.hdiffz.time"
  size() { stat -c %s "$1"; }
  label="$name ($pkg $v1→$v2)"
  [ "$src" = debian ] && label="$name (ext4 image of Debian bookworm $pkg: $(fetch_versions "$pkg" oldest) → $(fetch_versions "$pkg" newest))"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$(size "$old")" "$(size "$new")" \
    "$(size "$o.fc")" "$(size "$o.bsdiff")" "$(size "$o.xdelta3")" "$(size "$o.zstd")" "$(size "$o.hdiffz")" \
    "$diff_s" "$hdiffz_s" "$apply_s" "$apply_kib" "$(size "$o.full")" >> "$tsv"
done

big_patch_s=- big_patch_kib=0 big_full_s=- big_full_kib=0 hash_kib=0
if "$fc" demo --help >/dev/null 2>&1; then
  say "64 MiB image: apply peak RSS (patch and full image)"
  "$fc" --quiet demo --size-mib 64 --dir "$work/demo64" >/dev/null
  "$fc" --quiet diff "$work/demo64/firmware-v1.bin" "$work/demo64/firmware-v2.bin" -o "$work/demo64/full.update" --kind full
  read -r big_patch_s big_patch_kib < <(measure "$fc" --quiet apply "$work/demo64/firmware-v1.bin" "$work/demo64/v1-to-v2.patch" -o "$work/demo64/out.bin")
  cmp -s "$work/demo64/out.bin" "$work/demo64/firmware-v2.bin"
  read -r big_full_s big_full_kib < <(measure "$fc" --quiet apply "$work/demo64/firmware-v1.bin" "$work/demo64/full.update" -o "$work/demo64/out-full.bin")
  cmp -s "$work/demo64/out-full.bin" "$work/demo64/firmware-v2.bin"
  read -r _ hash_kib < <(measure "$fc" --quiet hash "$work/demo64/firmware-v2.bin")
else
  say "$fc has no demo command: 64 MiB section skipped"
fi

python3 - "$tsv" "$results" "$big_patch_s" "$big_patch_kib" "$big_full_s" "$big_full_kib" "$hash_kib" "$(basename "$fc")" <<'PY'
import csv, math, sys, datetime, platform, os
tsv, out, bps, bpk, bfs, bfk, hk, binary = sys.argv[1:]
rows = list(csv.DictReader(open(tsv), delimiter='\t'))
tools = ['ours', 'bsdiff', 'xdelta3', 'zstd', 'hdiffz']
pct = lambda r, t: 100.0 * int(r[t]) / int(r['new'])
mb = lambda n: f"{int(n) / 1e6:.2f} MB"
lines = [
    "# Patch benchmark", "",
    f"Made by `bash bench/patch.sh` on {datetime.date.today()} ({os.cpu_count()} cores, {platform.machine()}).",
    "Patch size as % of the new file (smaller is better). ours = `firmchain diff --kind patch` (format 2: bidiff",
    "instructions split into control/add/copy streams; AArch64 ELF pairs are also diffed through the branch filter",
    "and the diff whose streams code smaller by a quick estimate is kept; each stream zstd -19 or raw LZMA2 (xz 9e),",
    "whichever is smaller, with a window of at most 2^20);",
    "bsdiff 4.3; xdelta3 `-9 -S djw`; zstd 1.5 `-19 --patch-from`;",
    "hdiffz 5.1.3 (HDiffPatch in the hdiffpatch 2.6.0 sdist) `-m-6 -SD -c-zstd-21-24`. Times and RSS (GNU time, peak",
    f"RSS = VmHWM) are for `{binary}`, except the hdiffz diff time.", "",
    "| pair | old | new | ours | bsdiff | xdelta3 | zstd | hdiffz | ours ÷ hdiffz | full image | diff s | hdiffz s | apply s | apply peak RSS |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
]
for r in rows:
    cells = [r['pair'], mb(r['old']), mb(r['new'])] + [f"{pct(r, t):.2f}%" for t in tools]
    cells += [f"{int(r['ours']) / int(r['hdiffz']):.3f}", f"{pct(r, 'full'):.1f}%", r['diff_s'], r['hdiffz_s'],
              r['apply_s'], f"{int(r['apply_kib']) / 1024:.1f} MiB"]
    lines.append("| " + " | ".join(cells) + " |")
geo = {t: math.exp(sum(math.log(pct(r, t)) for r in rows) / len(rows)) for t in tools}
lines.append("| **geometric mean** | | | " + " | ".join(f"**{geo[t]:.2f}%**" for t in tools) + " | | | | | | |")
largest = max(rows, key=lambda r: int(r['new']))
worst = max(rows, key=lambda r: int(r['ours']) / int(r['hdiffz']))
lines += ["",
    f"- ours ÷ hdiffz (geometric mean): {geo['ours'] / geo['hdiffz']:.3f}; largest pair-wise ratio: "
    f"{int(worst['ours']) / int(worst['hdiffz']):.3f} ({worst['pair'].split(' ')[0]})",
    f"- pairs where ours ≤ bsdiff: {sum(int(r['ours']) <= int(r['bsdiff']) for r in rows)} of {len(rows)}",
    f"- diff time on the largest pair ({largest['pair'].split(' ')[0]}): {largest['diff_s']} s, hdiffz {largest['hdiffz_s']} s "
    f"({float(largest['diff_s']) / max(float(largest['hdiffz_s']), 0.01):.2f}×)",
    f"- apply peak RSS, largest pair: {int(largest['apply_kib']) / 1024:.1f} MiB; any pair: "
    f"{max(int(r['apply_kib']) for r in rows) / 1024:.1f} MiB",
    ] + ([] if bps == "-" else ["", "## 64 MiB image", "",
    f"`firmchain apply` of a 64 MiB generated image (`firmchain demo --size-mib 64`): patch {bps} s at "
    f"{int(bpk) / 1024:.1f} MiB peak RSS; full image {bfs} s at {int(bfk) / 1024:.1f} MiB peak RSS. "
    f"For scale, `firmchain hash` of the same file peaks at {int(hk) / 1024:.1f} MiB."]) + [""]
open(out, 'w').write("\n".join(lines))
print("\n".join(lines))
PY
say "wrote $results"
