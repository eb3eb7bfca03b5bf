#!/usr/bin/env bash
# Build the real Supabase Storage server the artifact tests run against, once per version, outside the repository:
# ${XDG_CACHE_HOME:-~/.cache}/lora-orchestrator/supabase-storage-VERSION (ORCHESTRATOR_TEST_CACHE overrides the
# parent). The source tarball comes from ../shared/services/ beside the repository, else shared/services/ inside it
# (ORCHESTRATOR_TEST_SERVICES_DIR overrides the folder). Skips the TypeScript type check (npm run build's tsc
# -noEmit): the same JavaScript in a third of the time. A lock keeps two test runs from building at once; a finished
# build is marked and reused.
# Prints the build's directory on stdout; everything else goes to stderr.
set -euo pipefail
VERSION=v1.22.10
repo=$(cd "$(dirname "$0")/.." && pwd)
services=${ORCHESTRATOR_TEST_SERVICES_DIR:-$repo/../shared/services}
if [ ! -d "$services" ] && [ -z "${ORCHESTRATOR_TEST_SERVICES_DIR:-}" ]; then
  services=$repo/shared/services  # a checkout that holds shared/ itself
fi
tarball=$services/supabase-storage-$VERSION.tar.gz
cache=${ORCHESTRATOR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lora-orchestrator}
dest=$cache/supabase-storage-$VERSION
mkdir -p "$cache"
exec 9>"$dest.lock"
flock 9
if [ -f "$dest/.built" ]; then
  echo "$dest"
  exit 0
fi
if [ ! -f "$tarball" ]; then
  echo "no Supabase Storage source at $tarball (set ORCHESTRATOR_TEST_SERVICES_DIR to the folder holding it)" >&2
  exit 3
fi
command -v npm >/dev/null || { echo "npm not found: the Supabase Storage server needs Node 20 and npm" >&2; exit 3; }
started=$(date +%s)
rm -rf "$dest"
mkdir -p "$dest"
tar xzf "$tarball" -C "$dest" --strip-components=1
(cd "$dest" && npm ci --no-audit --no-fund --loglevel=error && node ./build.js \
  && npx --no-install resolve-tspaths) >&2 \
  || { echo "building the Supabase Storage server in $dest failed (output above)" >&2; exit 4; }
touch "$dest/.built"
echo "built the Supabase Storage server $VERSION in $(( $(date +%s) - started )) s: $dest" >&2
echo "$dest"
