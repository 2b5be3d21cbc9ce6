#!/usr/bin/env bash
# Download a Debian documentation package and unpack it (no install, no root needed for dpkg -x).
# Usage: scripts/fetch-debian-doc.sh PACKAGE DEST_DIR
# Idempotent: does nothing when DEST_DIR/.complete exists.
set -euo pipefail
pkg="$1"; dest="$2"
[ -f "$dest/.complete" ] && exit 0
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && apt-get download "$pkg" >/dev/null 2>&1); then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null; else sudo apt-get update -qq >/dev/null; fi
  (cd "$work" && apt-get download "$pkg" >/dev/null)
fi
rm -rf "$dest.partial"; mkdir -p "$dest.partial"
dpkg -x "$work"/"$pkg"_*.deb "$dest.partial"
touch "$dest.partial/.complete"
rm -rf "$dest"; mv "$dest.partial" "$dest"
echo "unpacked $pkg into $dest"
