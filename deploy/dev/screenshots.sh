#!/usr/bin/env bash
# Takes the screenshots in docs/screenshots/ by running the browser test, which saves a
# PNG of each main page when PLATFORM_SCREENSHOTS names a folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/dev/services.sh
bash deploy/dev/browser.sh
PLATFORM_SCREENSHOTS="$PWD/docs/screenshots" cargo test -p platform --test browser -- --nocapture
ls -1 docs/screenshots
