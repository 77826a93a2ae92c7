#!/usr/bin/env bash
# Make sure Debian's headless-capable Chromium is installed; print its path on stdout.
# Used by the browser end-to-end test of the dashboard (tests/integration/test_dashboard_browser.py).
# Exit 0 with the path when Chromium is there (or was just installed); exit 3 with a one-line
# reason on stderr when it cannot be installed (not root, no apt-get, package not reachable).
set -euo pipefail

find_chromium() {
    local c
    for c in "${CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
        if [[ -n "$c" && -x "$c" ]]; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

if find_chromium; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: chromium not found and apt-get is not available: install Chromium and set CHROMIUM=/path/to/chromium" >&2
    exit 3
fi
SUDO=""
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "error: chromium not found and not root (no passwordless sudo): run 'apt-get install -y chromium' as root" >&2
        exit 3
    fi
fi

echo "installing Debian package chromium (apt-get install -y chromium)..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core >&2; then
    # The package lists may be missing or stale on a fresh machine: refresh once and retry.
    $SUDO apt-get update >&2 || true
    if ! $SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core >&2; then
        echo "error: 'apt-get install -y chromium' failed (see above)" >&2
        exit 3
    fi
fi

if find_chromium; then
    exit 0
fi
echo "error: chromium was installed but no executable found at /usr/bin/chromium" >&2
exit 3
