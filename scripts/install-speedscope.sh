#!/usr/bin/env bash
# Installs speedscope's own web app (the npm package `speedscope`, which ships
# the built app in dist/release/) into the project-local .npm/ directory, for
# the browser tests that open our speedscope files in it.
#
# Idempotent: when the pinned version is already there it touches neither npm
# nor the network. Offline-tolerant: when npm is missing or the registry is
# unreachable it says so and exits 0 (the browser tests then skip, or fail
# under CI, with the reason); npm's cache lives in .npm/cache, so a second
# install after `rm -rf .npm/node_modules` works offline.
set -euo pipefail

VERSION="${SPEEDSCOPE_VERSION:-1.25.0}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$root/.npm"
package="$prefix/node_modules/speedscope"

installed_version() {
  [ -f "$package/package.json" ] && [ -f "$package/dist/release/index.html" ] || return 1
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$package/package.json" 2>/dev/null
}

if [ "$(installed_version || true)" = "$VERSION" ]; then
  exit 0
fi

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "install-speedscope: node/npm not found; speedscope's browser tests will be skipped" >&2
  exit 0
fi

mkdir -p "$prefix"
# A package.json of our own keeps npm from walking up to another project's.
[ -f "$prefix/package.json" ] || printf '{"name": "profiler-test-tools", "private": true}\n' > "$prefix/package.json"

if npm install --prefix "$prefix" --cache "$prefix/cache" --prefer-offline \
      --no-audit --no-fund --ignore-scripts --no-save --loglevel=error \
      "speedscope@$VERSION" >&2; then
  if [ "$(installed_version || true)" = "$VERSION" ]; then
    echo "install-speedscope: speedscope $VERSION in $package" >&2
    exit 0
  fi
  echo "install-speedscope: npm finished but $package/dist/release/index.html is missing" >&2
  exit 1
fi
echo "install-speedscope: could not install speedscope@$VERSION (offline?); speedscope's browser tests will be skipped" >&2
exit 0
