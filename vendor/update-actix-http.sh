#!/usr/bin/env bash
# Rebuilds vendor/actix-http from the crates.io release and vendor/actix-http.patch:
# downloads the crate (checking its checksum against Cargo.lock's), drops what Herald does
# not build (benches, examples, tests, their Cargo.toml entries come out with the patch)
# and applies the patch. To move to another release, set VERSION and CHECKSUM, run this,
# and settle what the patch no longer applies to by hand (see vendor/README.md).
set -euo pipefail
cd "$(dirname "$0")"

VERSION=${VERSION:-3.20.0}
CHECKSUM=${CHECKSUM:-d20a22850ea7fecad12c5f8cd97d246c3af1f04ef400033977c2f13425c45816}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -sSfL -o "$work/crate.tar.gz" \
  "https://static.crates.io/crates/actix-http/actix-http-$VERSION.crate"
echo "$CHECKSUM  $work/crate.tar.gz" | sha256sum --check --quiet
tar -xzf "$work/crate.tar.gz" -C "$work"
crate="$work/actix-http-$VERSION"
rm -rf "$crate/benches" "$crate/examples" "$crate/tests" "$crate/Cargo.lock" \
  "$crate/.cargo_vcs_info.json"
patch --quiet --directory="$crate" --strip=1 < actix-http.patch
rm -rf actix-http
mv "$crate" actix-http
echo "vendor/actix-http: actix-http $VERSION with Herald's patch"
