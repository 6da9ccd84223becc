#!/usr/bin/env bash
# Arm cost per token as guest instructions, independent of this machine's timing noise: Wren (and, optionally,
# llama.cpp) run single-threaded as arm64 code under qemu-aarch64 with the tools/insn_count.c plugin. Per decoded
# token: the difference of two runs that generate N0 and N1 tokens after the same prompt, divided by N1 - N0. Per
# prompt token: the difference of two runs with prompts of P0 and P1 tokens. Results: docs/arm-cost.md.
#
#   bash scripts/arm64.sh cortex-a76          # once: the arm64 userland with Wren built for aarch64
#   bash tools/arm_cost.sh [--llama DIR] [CPU...]    CPUs: cortex-a76 (default), max
#
# --profile: also attributes Wren's decode instructions to files and functions (tools/arm_profile.py).
# --no-wren: only llama.cpp.
# WREN_ARM_PYTHONPATH: a quick build of this checkout to measure instead of the userland's (tools/arm_dev_build.sh).
# --llama DIR: llama-bench-dotprod / llama-bench-i8mm built by tools/build_llama_arm64.sh (optional).
# Models: SmolLM2-135M-Instruct Q4_1 (the shipped file, from WREN_MODELS_DIR or the userland's copy) and its Q4_0
# requantization, written once with llama-cpp-python's llama_model_quantize (allow_requantize) when the host
# Python ($WREN_VENV or .venv) has llama_cpp; otherwise only Q4_1 is measured.
# Needs the host's qemu-aarch64 (Debian qemu-user 7.2, built with plugin support) and a C compiler.
main() {
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
llama=""
profile=""
no_wren=""
cpus=()
while [ $# -gt 0 ]; do
    case "$1" in
        --llama) llama=$(cd "$2" && pwd); shift 2 ;;
        --profile) profile=1; shift ;;
        --no-wren) no_wren=1; shift ;;
        *) cpus+=("$1"); shift ;;
    esac
done
[ ${#cpus[@]} -gt 0 ] || cpus=(cortex-a76)
P0=${P0:-16} P1=${P1:-64} N0=${N0:-8} N1=${N1:-40}

dir=$(cd "${WREN_ARM64_DIR:-$repo/.arm64}" && pwd)
root=$dir/root
[ -n "$no_wren" ] || [ -x "$root/opt/venv/bin/python" ] || { echo "no arm64 userland at $root: run scripts/arm64.sh first" >&2; exit 1; }
py=$(ls "$root"/usr/bin/python3.[0-9]* 2>/dev/null | grep -E 'python3\.[0-9]+$' | head -1 || true)
site=$(ls -d "$root"/opt/venv/lib/python3.*/site-packages 2>/dev/null || true)
site=${site#"$root"}
so=$dir/insn_count.so
cc -shared -fPIC -O2 -Wall -o "$so" tools/insn_count.c

q41=${WREN_MODELS_DIR:-$root/wren/models}/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$q41" ] || q41=$root/wren/models/SmolLM2-135M-Instruct.Q4_1.gguf
q40=$dir/SmolLM2-135M-Instruct.Q4_0.gguf
host_python=${WREN_VENV:-.venv}/bin/python
if [ ! -f "$q40" ] && "$host_python" -c "import llama_cpp" 2>/dev/null; then
    "$host_python" - "$q41" "$q40" <<'EOF'
import sys
import llama_cpp
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
p.allow_requantize = True
p.nthread = 2
assert llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), p) == 0
EOF
fi
models=("$q41")
[ -f "$q40" ] && models+=("$q40")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# instructions CPU CMD...: the guest instructions CMD executes, as arm64 code on the emulated CPU
instructions() {
    local cpu=$1 plugin=$so,out=$tmp/count; shift
    [ -z "${BLOCKS:-}" ] || plugin=$plugin,blocks=$BLOCKS
    env -i PATH=/usr/bin:/bin LANG=C.UTF-8 OPENBLAS_NUM_THREADS=1 PYTHONPATH="${WREN_ARM_PYTHONPATH:+$WREN_ARM_PYTHONPATH:}$site" PYTHONDONTWRITEBYTECODE=1 PYTHONHASHSEED=0 WREN_MAPS_OUT=${MAPS:-} \
        qemu-aarch64 -cpu "$cpu" -L "$root" -plugin "$plugin" "$@" > "$tmp/out" 2>&1 \
        || { cat "$tmp/out" >&2; return 1; }
    awk '{print $2}' "$tmp/count"
}
per_token() {  # a b n -> (b - a) / n in millions
    awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f", (b - a) / n / 1e6 }'
}

echo "| engine | model | -cpu | kernels | M instructions per decoded token | M per prompt token |"
echo "|---|---|---|---|---|---|"
for cpu in "${cpus[@]}"; do
    for model in "${models[@]}"; do
        if [ -z "$no_wren" ]; then
        a=$(instructions "$cpu" "$py" tools/arm_cost_run.py "$model" $P0 $N0)
        kernels=$(sed -n 's/^kernels \([a-z0-9]*\);.*/\1/p' "$tmp/out")
        b=$(instructions "$cpu" "$py" tools/arm_cost_run.py "$model" $P0 $N1)
        c=$(instructions "$cpu" "$py" tools/arm_cost_run.py "$model" $P1 $N0)
        echo "| wren | $(basename "$model") | $cpu | $kernels | $(per_token "$a" "$b" $((N1 - N0))) | $(per_token "$a" "$c" $((P1 - P0))) |"
        if [ -n "$profile" ]; then
            for n in $N0 $N1; do
                BLOCKS=$tmp/blocks$n MAPS=$tmp/maps$n instructions "$cpu" "$py" tools/arm_cost_run.py "$model" $P0 $n >/dev/null
            done
            echo "decode, per token:"
            python3 tools/arm_profile.py "$tmp/blocks$N0" "$tmp/maps$N0" "$root" "$tmp/blocks$N1" "$tmp/maps$N1" $((N1 - N0))
            for n in $P0 $P1; do
                BLOCKS=$tmp/pblocks$n MAPS=$tmp/pmaps$n instructions "$cpu" "$py" tools/arm_cost_run.py "$model" $n $N0 >/dev/null
            done
            echo "prefill, per token:"
            python3 tools/arm_profile.py "$tmp/pblocks$P0" "$tmp/pmaps$P0" "$root" "$tmp/pblocks$P1" "$tmp/pmaps$P1" $((P1 - P0))
        fi
        fi
        [ -n "$llama" ] || continue
        bin=$llama/llama-bench-dotprod
        [ "$cpu" = max ] && bin=$llama/llama-bench-i8mm
        lb() { instructions "$cpu" "$bin" -m "$model" -t 1 -r 1 --no-warmup -p 0 -n 0 -pg "$1,$2"; }
        a=$(lb $P0 $N0); b=$(lb $P0 $N1); c=$(lb $P1 $N0)
        echo "| llama.cpp | $(basename "$model") | $cpu | $(basename "$bin") | $(per_token "$a" "$b" $((N1 - N0))) | $(per_token "$a" "$c" $((P1 - P0))) |"
    done
done
}
main "$@"
