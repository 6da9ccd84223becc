#!/usr/bin/env bash
# A quick aarch64 build of this checkout for tools/arm_cost.sh, without reinstalling into the arm64 userland:
# the cffi module cross-compiled on the host (aarch64-linux-gnu-gcc, the userland's Python headers) and the Python
# package laid out in OUT as wren/. Then point arm_cost.sh at it:
#
#   bash tools/arm_dev_build.sh /tmp/wren-arm
#   WREN_ARM_PYTHONPATH=/tmp/wren-arm bash tools/arm_cost.sh cortex-a76
#
# The userland (scripts/arm64.sh, WREN_ARM64_DIR) provides Python, numpy and the other packages. The kernels built
# here use the host cross compiler (gcc 12 like the userland's) with the flags of a build inside (the userland
# Python's CFLAGS, then engine/_build.py's).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: arm_dev_build.sh OUT}
root=$(cd "${WREN_ARM64_DIR:-.arm64}" && pwd)/root
py=${WREN_VENV:-.venv}/bin/python
inc=$(ls -d "$root"/usr/include/python3.* | head -1)
rm -rf "$out/wren"
mkdir -p "$out/wren/engine"
args=$("$py" - "$out/_native.c" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("build", "engine/_build.py")
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
m.ffibuilder.emit_c_code(sys.argv[1])
print(" ".join(m.compile_args()))
PY
)
args=${args##*$'\n'}    # the last line (cffi prints what it generates)
# the flags a pip install in the userland uses: its Python's CFLAGS and CCSHARED, then the project's own
pyflags=$(qemu-aarch64 -L "$root" "$(ls "$root"/usr/bin/python3.[0-9]* | grep -E 'python3\.[0-9]+$' | head -1)" -c \
    "import sysconfig as s; print(s.get_config_var('CFLAGS'), s.get_config_var('CCSHARED'))")
cp -r engine/. "$out/wren/engine/"
rm -f "$out"/wren/engine/*.so
cp -r resources "$out/wren/resources"
touch "$out/wren/__init__.py"
# shellcheck disable=SC2086
aarch64-linux-gnu-gcc -shared $pyflags $args \
    -Icsrc -I"$inc" -I"$root/usr/include" "$out/_native.c" csrc/*.c csrc/arch/*/*.c -lm -lpthread \
    -o "$out/wren/engine/_native.abi3.so"
echo "built $out/wren"
