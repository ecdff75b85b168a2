#!/usr/bin/env bash
# Starts the platform with the shipped metadata and the demo tenant's data on
# http://127.0.0.1:3010 (override with ADDR). Builds in release mode first.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/dev/services.sh
# Chromium for deploy/dev/screenshots.sh and the browser tests; the server runs without it.
bash deploy/dev/browser.sh || echo "warning: chromium could not be installed; the browser tests will fail"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/platform}"
export JWT_SECRET="${JWT_SECRET:-dev-only-secret-change-me}"
export RUST_LOG="${RUST_LOG:-info}"
# Development: webhooks may call receivers on this machine (refused in production).
export WEBHOOKS_ALLOW_PRIVATE="${WEBHOOKS_ALLOW_PRIVATE:-true}"
# Events go to the local RabbitMQ when it answers; otherwise they are dispatched in-process.
if [ -z "${AMQP_URL+x}" ] && (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  export AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
fi
cargo build --release --bin platform
exec target/release/platform serve --addr "${PLATFORM_ADDR:-${ADDR:-127.0.0.1:3010}}" --metadata metadata --demo
