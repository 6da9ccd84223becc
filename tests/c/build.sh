#!/bin/sh
# Builds the C kernel harness: tests/c/build.sh native|aarch64 OUTPUT
# aarch64 cross-compiles a static binary for qemu-aarch64 (Debian: gcc-aarch64-linux-gnu, libc6-dev-arm64-cross).
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=$1
out=$2
case "$target" in
native) cc=${CC:-cc}; extra="" ;;
aarch64) cc=${CROSS_CC:-aarch64-linux-gnu-gcc}; extra="-static" ;;
*) echo "usage: $0 native|aarch64 OUTPUT" >&2; exit 2 ;;
esac
# the extension's flags (engine/_build.py reads the same file)
cflags=$(sed 's/#.*//' "$root/csrc/cflags")
exec $cc $cflags $extra -I"$root/csrc" \
    "$root"/csrc/*.c "$root"/csrc/arch/x86/*.c "$root"/csrc/arch/arm/*.c "$here/harness.c" \
    -o "$out" -lm -lpthread
