#!/usr/bin/env bash
# Build Exim from a release's source tarball into a cache folder, once per tarball.
#
#   scripts/build-exim.sh TARBALL CACHE_DIR
#
# The tests' ODMR provider is Exim 4.99.1, the first release with ATRN on both sides; Debian 12
# ships 4.96, so it is built from source. TARBALL is the release's `src/` tree (GPL, its LICENCE
# inside). The binary lands in CACHE_DIR/<sha256 of the tarball>/bin/exim, and CACHE_DIR/current
# points at that folder: peers/servers/exim-odmr.ts looks there. A folder already built from the
# same tarball is kept, so a second run costs nothing.
#
# Needs (Debian): build-essential, libpcre2-dev, libdb-dev, libssl-dev, libidn-dev, libidn2-dev,
# pkg-config. Every path the build asks for is only a default: each test runs `exim -C FILE` with
# its own spool, log and pid paths.
set -euo pipefail
tarball=${1:?usage: build-exim.sh TARBALL CACHE_DIR}
cache=${2:?usage: build-exim.sh TARBALL CACHE_DIR}

if [ ! -r "$tarball" ]; then
  echo "build-exim.sh: the Exim source tarball is missing: $tarball" >&2
  exit 1
fi
hash=$(sha256sum "$tarball" | cut -c1-16)
out="$cache/$hash"
if [ -x "$out/bin/exim" ] && "$out/bin/exim" -C /dev/null -bV 2>/dev/null | grep -q "^Exim version"; then
  ln -sfn "$hash" "$cache/current"
  echo "Exim already built from this tarball: $out/bin/exim"
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar xzf "$tarball" -C "$work"
src=$(find "$work" -maxdepth 4 -name EDITME -path '*/src/src/EDITME' -printf '%h\n' | head -n1)
src=${src%/src}
[ -n "$src" ] || { echo "build-exim.sh: no src/src/EDITME in $tarball" >&2; exit 1; }

cd "$src"
mkdir -p Local
# EDITME's defaults, then the settings we need; the last assignment of a make variable wins.
{
  cat src/EDITME
  cat <<'EOF'

# --- dequeue's test build ---
BIN_DIRECTORY=/nonexistent/exim/bin
CONFIGURE_FILE=/nonexistent/exim/configure
SPOOL_DIRECTORY=/nonexistent/exim/spool
# root is in Exim's fixed never_users, so deliveries run as nobody (exim_user in each -C file).
EXIM_USER=ref:nobody
USE_OPENSSL=yes
TLS_LIBS=-lssl -lcrypto
AUTH_CRAM_MD5=yes
AUTH_PLAINTEXT=yes
USE_DB=yes
DBMLIB=-ldb
# SMTPUTF8 (RFC 6531): a provider holding a message that needs it.
SUPPORT_I18N=yes
SUPPORT_I18N_2008=yes
LDFLAGS += -lidn -lidn2
EOF
} | sed -e 's/^EXIM_MONITOR=/# EXIM_MONITOR=/' >Local/Makefile
# A tarball has no git to take the version from.
cat >src/version.sh <<'EOF'
# automatically generated file - see ../scripts/reversion
EXIM_RELEASE_VERSION="4.99.1"
EXIM_VARIANT_VERSION=""
EXIM_COMPILE_NUMBER="0"
EOF
version=$(sed -n 's/^.*exim-\([0-9][0-9.]*\)\/src.*$/\1/p' <<<"$src")
[ -n "$version" ] && sed -i "s/^EXIM_RELEASE_VERSION=.*/EXIM_RELEASE_VERSION=\"$version\"/" src/version.sh

make -s -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -40 "$work/make.log" >&2; exit 1; }
binary=$(find build-*/ -maxdepth 1 -name exim -type f | head -n1)
rm -rf "$out.new" && mkdir -p "$out.new/bin"
cp "$binary" "$out.new/bin/exim"
cp LICENCE "$out.new/" 2>/dev/null || true
rm -rf "$out" && mv "$out.new" "$out"
ln -sfn "$hash" "$cache/current"
"$out/bin/exim" -C /dev/null -bV 2>/dev/null | grep "^Exim version"
