#!/usr/bin/env bash
# Re-vendors the watch page's browser libraries from the versions pinned in web/package-lock.json
# into web/vendor/ (committed, embedded into the roomcast binary at build time). Run after
# changing web/package.json; the page then works offline and behind any firewall.
set -euo pipefail
cd "$(dirname "$0")/../web"
npm ci --no-audit --no-fund --loglevel=error
cp node_modules/hls.js/dist/hls.min.js vendor/hls.min.js
cp node_modules/socket.io-client/dist/socket.io.min.js vendor/socket.io.min.js
node -e 'for (const p of ["hls.js","socket.io-client"]) { const v=require(`./node_modules/${p}/package.json`).version; console.log(`${p} ${v}`); }' > vendor/VERSIONS
cat vendor/VERSIONS
