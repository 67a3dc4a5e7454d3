#!/usr/bin/env bash
# Rebuilds docs/commands.md from what the binaries print for --help, and
# docs/config.md from what log-server config prints. The
# TestHelpMatchesDocs tests of cmd/* (and cmd/log-server's
# TestConfigCommand) fail until it is rerun after a flag changes.
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
for spec in "log-server|--help" "log-server|config --help" "log-server|token create --help" "log-server|token revoke --help" "log-server|token list --help" "log-server|mcp wrap --help" \
            "witness|--help" "witness|keygen --help" \
            "monitor|--help" "monitor|verify --help" "monitor|verify-receipt --help" "monitor|verify-disclosure --help" "monitor|verify-signature --help" "monitor|report --help" "monitor|verify-report --help" \
            "replay|--help" "replay|show --help" "replay|step --help" "replay|serve --help" \
            "loadgen|--help"; do
  IFS='|' read -r name args <<< "$spec"
  case "$name $args" in
    "log-server --help") printf '\n## log-server\n\nServes the log (see [event-api.md](event-api.md), [capture.md](capture.md)); its settings come from flags or a `--config` file (see [config.md](config.md)). Environment: `LLMAUDIT_MASTER_KEY` (64 hex digits) supplies the vault master key (see `--master-key-source`); `LLMAUDIT_DB_DSN` the s3 storage'"'"'s database (see `--db-dsn` and [scale-out.md](scale-out.md)); `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` its bucket'"'"'s credentials.\n' ;;
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
{
cat <<'EOF'
# Configuration file

`log-server serve --config FILE` reads its settings from a YAML file: one mapping, a key per flag of
[`log-server --help`](commands.md#log-server), named as the flag with `_` for `-` (`--batch-max-age` is
`batch_max_age`), of the flag's type: a string (quoted if YAML would read it as something else), an
integer, `true` or `false`, a duration such as `500ms`, `10s` or `2m`, and for a repeatable flag a
mapping (`upstream`, `mcp_upstream`, `intercept_resolve`: `NAME: VALUE`) or a list (`intercept_allow`).

- **Precedence**: a flag given on the command line, then the file, then the default. A repeatable flag
  given on the command line replaces the file's whole mapping or list. Only `--db-dsn` falls back to an
  environment variable (`LLMAUDIT_DB_DSN`).
- **Strict**: an unknown key, a key given twice, a value of the wrong type and a second YAML document
  are refused with the file and the line (`log-server: --config: server.yaml:3: listen_addr: unknown
  key`, exit 2), a key that a flag overrides too.
- **No secrets**: the file names where secrets are and never holds one. `--db-dsn` (it carries the
  database password) is not a key: give the flag or `LLMAUDIT_DB_DSN`. A `signing_key` URI with
  `pin-value` is refused: name a file of mode 0600 with `pin-source=file:PATH`. The vault master key
  comes from `master_key_source` (`keys/master.key` of mode 0600, `LLMAUDIT_MASTER_KEY` or the kernel
  keyring), the TLS key from `tls_key`, a file of mode 0600.
- Paths are relative to the working directory, as on the command line.
- `log-server config [--config FILE] [flags]` prints the settings serve would run with, as such a
  file: to check a file before a restart, or to see what a flag overrides.

Every key with its default, as `log-server config` prints it with no file and no flags (a test keeps
this block equal to it):

```yaml
EOF
"$bin/log-server" config
echo '```'
} > docs/config.md
