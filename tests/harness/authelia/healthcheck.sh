#!/bin/sh
# Container healthcheck for mcpgate-local/authelia (adapted from upstream's healthcheck.sh).
# Authelia writes its listener's scheme/host/port/path into /app/.healthcheck.env at startup;
# without that file (or before Authelia wrote it) the defaults below are used, which match
# mcpgate's `server.address: tcp://0.0.0.0:9091/auth`: http://127.0.0.1:9091/auth/api/health.

# shellcheck source=/dev/null
[ -r /app/.healthcheck.env ] && . /app/.healthcheck.env

scheme="${X_AUTHELIA_HEALTHCHECK_SCHEME:-http}"
host="${X_AUTHELIA_HEALTHCHECK_HOST:-127.0.0.1}"
port="${X_AUTHELIA_HEALTHCHECK_PORT:-9091}"
if [ -n "${X_AUTHELIA_HEALTHCHECK}" ]; then
	path="${X_AUTHELIA_HEALTHCHECK_PATH}"
else
	path="${X_AUTHELIA_HEALTHCHECK_PATH-/auth}"
fi
# Authelia writes "localhost" for a wildcard listener; prefer IPv4 loopback.
[ "${host}" = "localhost" ] && host=127.0.0.1

exec wget --quiet --no-check-certificate --tries=1 --timeout=3 --spider \
	"${scheme}://${host}:${port}${path}/api/health"
