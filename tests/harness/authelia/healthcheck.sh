#!/bin/sh
# Container healthcheck for mcpgate-local/authelia (adapted from upstream's healthcheck.sh).
# The image ships no /app/.healthcheck.env (see Dockerfile), so the defaults below apply,
# matching mcpgate's `server.address: tcp://0.0.0.0:9091/auth`:
# http://127.0.0.1:9091/auth/api/health. X_AUTHELIA_HEALTHCHECK_{SCHEME,HOST,PORT,PATH} in the
# environment, or a /app/.healthcheck.env written by Authelia (if one is mounted), override them.

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
