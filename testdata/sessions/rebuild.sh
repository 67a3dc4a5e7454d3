#!/usr/bin/env bash
# Rebuilds sessions.jsonl: realistic agent sessions recorded through the
# capture proxy and the Go middleware with the official openai-go and
# anthropic-sdk-go clients, against local upstreams that answer like the
# providers (internal/providertest). The monitor's rule pack must
# raise no alert on it (monitor/sessions_test.go). Review the diff before
# committing it.
set -euo pipefail
cd "$(dirname "$0")/../.."
go test ./capture -run '^TestRealisticSessions$' -count=1 -args -update-sessions
