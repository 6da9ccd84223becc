#!/usr/bin/env bash
# Development step, never a dependency: llama.cpp's llama-bench built for aarch64 (static, no OpenMP) from the
# sources vendored in the llama-cpp-python sdist, once per Arm level, for tools/arm_cost.sh to compare against.
#
#   bash tools/build_llama_arm64.sh SDIST_DIR OUT_DIR
#
# SDIST_DIR is an unpacked llama_cpp_python-0.3.36 (pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36,
# then tar xf). Writes OUT_DIR/llama-bench-dotprod (armv8.2-a+dotprod) and OUT_DIR/llama-bench-i8mm
# (armv8.6-a+dotprod+i8mm). Needs cmake, ninja and g++-aarch64-linux-gnu.
set -euo pipefail
sdist=$(cd "$1" && pwd)
out=$(mkdir -p "$2" && cd "$2" && pwd)
src=$sdist/vendor/llama.cpp
[ -f "$src/CMakeLists.txt" ] || { echo "no llama.cpp sources under $src" >&2; exit 1; }
for level in dotprod:armv8.2-a+dotprod i8mm:armv8.6-a+dotprod+i8mm; do
    name=${level%%:*} arch=${level#*:}
    [ -x "$out/llama-bench-$name" ] && continue
    build=$out/build-$name
    cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
        -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ \
        -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH="$arch" -DGGML_OPENMP=OFF \
        -DGGML_BACKEND_DL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_SERVER=OFF -DCMAKE_EXE_LINKER_FLAGS=-static > "$out/cmake-$name.log"
    ninja -C "$build" llama-bench > "$out/ninja-$name.log"
    cp "$build/bin/llama-bench" "$out/llama-bench-$name"
done
ls -l "$out"/llama-bench-*
