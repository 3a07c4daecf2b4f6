#!/usr/bin/env bash
# Debian's Chromium (and the fonts and Pango libraries WeasyPrint prints with) for the browser
# tests of the map and the atlas. Playwright drives this system binary; it never downloads a
# browser of its own. Prints nothing and changes nothing when all is installed already.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
ldconfig -p | grep -q libpango-1.0.so.0 || missing+=(libpango-1.0-0)
ldconfig -p | grep -q libpangoft2-1.0.so.0 || missing+=(libpangoft2-1.0-0)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${missing[*]} from Debian's packages" >&2
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >&2
fi
command -v chromium >/dev/null 2>&1
