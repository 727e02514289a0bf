#!/usr/bin/env bash
# Headless Chromium for the dashboard's real-browser tests (tests/browser.py drives it with Playwright).
#
#   scripts/chromium.sh install   # only install Debian's chromium package if missing (make test runs this)
#   scripts/chromium.sh path      # print the binary the tests will use
#   scripts/chromium.sh version
#
# The browser comes from Debian's packages (apt-get install chromium), as CI does; Playwright, the
# Python driver, is in the `dev` extra and is pointed at this binary (never `playwright install`,
# which downloads a browser from the internet). DISTILLGUARD_CHROMIUM overrides the binary.
set -euo pipefail

find_chromium() {
    if [ -n "${DISTILLGUARD_CHROMIUM:-}" ]; then echo "$DISTILLGUARD_CHROMIUM"; return 0; fi
    command -v chromium || command -v chromium-browser || return 1
}

install_chromium() {
    find_chromium >/dev/null && return 0
    echo "chromium not found; installing Debian's chromium package" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
    find_chromium >/dev/null || { echo "chromium is still missing after apt-get install" >&2; exit 1; }
}

case "${1:-}" in
install) install_chromium ;;
path) find_chromium || { echo "chromium not installed: run $0 install" >&2; exit 1; } ;;
version) "$(find_chromium)" --headless --version 2>/dev/null || "$(find_chromium)" --version ;;
*)
    echo "usage: $0 install|path|version" >&2
    exit 2
    ;;
esac
