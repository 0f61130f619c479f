#!/usr/bin/env bash
# Unit tests: type-check and compile, then run every test file under Node's test runner (Pulumi mocks).
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf bin
npx tsc -p tsconfig.json
node --test --test-concurrency=2 bin/test/unit/*.test.js
