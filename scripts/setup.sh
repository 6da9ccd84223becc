#!/usr/bin/env bash
# Shared set-up for scripts/run.sh and scripts/test.sh: system packages (when we may install them), a virtual
# environment in .venv (or $WREN_VENV) with Wren built from this checkout. Source it; it sets $venv.
set -euo pipefail

# what the build, the tests and the window need from the system; the Arm tools cross-compile and emulate the
# NEON / dotprod / i8mm kernels; the libraries are what Qt's offscreen, xcb (X11) and wayland platforms load (`ldd`
# of PySide6's plugins/platforms/libqxcb.so and libqwayland.so, plus xcb-cursor that Qt opens itself)
WREN_SYSTEM_PACKAGES=(gcc qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross
                      libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3
                      libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
                      libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0 libxcb-xinerama0
                      libxcb-xkb1 libxkbcommon-x11-0 libwayland-client0 libwayland-cursor0 libwayland-egl1)
# the tests also start real display servers: an X server (Xvfb) and a Wayland compositor (weston, headless)
if [ "${WREN_SETUP_FOR:-run}" = test ]; then WREN_SYSTEM_PACKAGES+=(xvfb xauth weston appstream desktop-file-utils); fi

install_system_packages() {
    command -v dpkg-query >/dev/null 2>&1 || { echo "setup: not a Debian-like system; install the equivalents of: ${WREN_SYSTEM_PACKAGES[*]}" >&2; return 0; }
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else
            echo "setup: please install: ${missing[*]} (apt-get install)" >&2; return 0
        fi
    fi
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python=${PYTHON:-python3}
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then WREN_SYSTEM_PACKAGES+=(python3-venv python3-dev); fi
install_system_packages "${WREN_SYSTEM_PACKAGES[@]}"

venv=${WREN_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating $venv"
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
