#!/usr/bin/env bash
# Loads report/index.html in headless Chromium and checks that it renders and that every
# picture in it decodes; with --screenshot FILE, also saves a picture of the page.
#   bash scripts/check_report.sh [REPORT_DIR] [--screenshot docs/images/report.png]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=report
shot=""
while [ $# -gt 0 ]; do
    case "$1" in
        --screenshot) shot="$2"; shift 2 ;;
        *) dir="$1"; shift ;;
    esac
done
page="$(realpath "$dir/index.html")"
[ -f "$page" ] || { echo "no report at $page: run the course first" >&2; exit 2; }
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
    echo "Chromium is not installed: sudo apt-get install chromium" >&2
    exit 2
fi
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=15000)
dom=$("$browser" "${flags[@]}" --dump-dom "file://$page" 2>/dev/null)
loaded=$(printf '%s' "$dom" | grep -o 'data-images-loaded="[0-9]*/[0-9]*"' | head -1 | grep -o '[0-9]*/[0-9]*' || true)
if [ -z "$loaded" ]; then
    echo "FAIL: the page did not finish loading in Chromium (no data-images-loaded mark)" >&2
    exit 1
fi
ok=${loaded%/*}
total=${loaded#*/}
sections=$(printf '%s' "$dom" | grep -o '<h2>' | wc -l)
echo "Chromium rendered $page: $sections parts, $ok of $total pictures decoded"
if [ "$ok" != "$total" ]; then
    echo "FAIL: not every picture decoded" >&2
    exit 1
fi
if [ -n "$shot" ]; then
    mkdir -p "$(dirname "$shot")"
    "$browser" "${flags[@]}" --window-size=1200,1800 --screenshot="$(realpath -m "$shot")" "file://$page" 2>/dev/null
    echo "screenshot: $shot"
fi
