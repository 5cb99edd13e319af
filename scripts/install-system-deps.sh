#!/usr/bin/env bash
# Debian packages the optional parts use: festival + the Telugu voice (an extra built-in speaker), the hunspell
# Telugu word list (training text), chromium (report screenshots, the browser demo test).
# Installs what is missing when it can (root, or sudo without a password); otherwise says what is missing and goes on:
# the tests that need a missing package skip with a reason.
set -u
want=(festival festvox-te-nsk hunspell-te chromium)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: not a Debian system; optional packages not installed: ${missing[*]}" >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "note: cannot install ${missing[*]} (needs root); the parts that use them will be skipped" >&2
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq >/dev/null || true
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || echo "note: apt-get could not install some of: ${missing[*]}" >&2
exit 0
