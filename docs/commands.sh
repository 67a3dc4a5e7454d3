#!/usr/bin/env bash
# Rebuilds docs/commands.md from what the binaries print for --help. The
# TestHelpMatchesDocs tests of cmd/* fail until it is rerun after a flag
# changes.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
for c in log-server witness monitor replay loadgen; do go build -o "$bin/$c" "./cmd/$c"; done
{
echo '# Commands'
echo
echo 'Every command prints its usage with `--help` (exit 0); a usage error prints the error and the usage on'
echo 'stderr (exit 2). Each block below is what the binary prints; the tests compare them (rebuild this page'
echo 'with `docs/commands.sh`).'
for spec in "log-server|--help" "log-server|token create --help" "log-server|token revoke --help" "log-server|token list --help" "log-server|mcp wrap --help" \
            "witness|--help" "witness|keygen --help" \
            "monitor|--help" "monitor|verify --help" "monitor|verify-receipt --help" "monitor|verify-signature --help" "monitor|report --help" "monitor|verify-report --help" \
            "replay|--help" "replay|show --help" "replay|step --help" "replay|serve --help" \
            "loadgen|--help"; do
  IFS='|' read -r name args <<< "$spec"
  case "$name $args" in
    "log-server --help") printf '\n## log-server\n\nServes the log (see [event-api.md](event-api.md), [capture.md](capture.md)). Environment: `LLMAUDIT_MASTER_KEY` (64 hex digits) supplies the vault master key (see `--master-key-source`); `LLMAUDIT_DB_DSN` the s3 storage'"'"'s database (see `--db-dsn` and [scale-out.md](scale-out.md)); `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` its bucket'"'"'s credentials.\n' ;;
    "witness --help") printf '\n## witness\n\nSee [witness.md](witness.md).\n' ;;
    "monitor --help") printf '\n## monitor\n\nSee [monitor.md](monitor.md) and [verifying.md](verifying.md).\n' ;;
    "replay --help") printf '\n## replay\n\nSee [replay.md](replay.md).\n' ;;
    "loadgen --help") printf '\n## loadgen\n\nSee [performance.md](performance.md) and [scale-out.md](scale-out.md).\n' ;;
  esac
  printf '\n```\n$ %s %s\n' "$name" "$args"
  # shellcheck disable=SC2086
  "$bin/$name" $args
  printf '```\n'
done
} > docs/commands.md
