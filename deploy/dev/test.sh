#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests and the integration tests against the
# real PostgreSQL on 127.0.0.1:5432. Each test creates its own database and drops it.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/dev/services.sh
# Chromium and chromedriver for the browser tests (engine/server/tests/browser).
bash deploy/dev/browser.sh
# Databases left behind by an interrupted earlier run.
psql -h 127.0.0.1 -U postgres -d postgres -Atc \
  "SELECT datname FROM pg_database WHERE datname LIKE 'platform_test_%'" 2>/dev/null |
  while read -r db; do psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true; done
# RabbitMQ queues of interrupted broker tests (each test names its own test.<uuid>
# exchange and queues, and removes them when it finishes).
if command -v rabbitmqctl >/dev/null; then
  { rabbitmqctl -q list_queues name 2>/dev/null || true; } | { grep -E '^test\.[0-9a-f]{32}\.' || true; } |
    while read -r q; do rabbitmqctl -q delete_queue "$q" </dev/null >/dev/null 2>&1 || true; done
fi
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --workspace -- --test-threads 4
