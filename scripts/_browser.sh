# Sourced by scripts/test.sh: the memory page's tests drive a real headless browser.
# Debian's chromium + chromium-driver, installed once when missing and this user may.
# Best effort: without them the page tests skip, naming the packages.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing chromium and chromium-driver for the memory page's browser tests" >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            chromium chromium-driver) >/dev/null 2>&1 \
            || echo "warning: could not install chromium; the page tests will skip" >&2
    else
        echo "note: chromium/chromedriver missing; the memory page's browser tests will skip" >&2
    fi
fi
