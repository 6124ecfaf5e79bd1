#!/bin/sh
# Stand-in for the official image's /app/healthcheck.sh, same behaviour: it reads what Authelia
# wrote into /app/.healthcheck.env; when Authelia wrote nothing (server.disable_healthcheck, as the
# deploy sets) the check passes, and the deploy's own --health-cmd asks /auth/api/health instead.

# shellcheck source=/dev/null
. /app/.healthcheck.env

if [ -z "${X_AUTHELIA_HEALTHCHECK}" ]; then
	exit 0
fi

exec wget --quiet --no-check-certificate --tries=1 --spider \
	"${X_AUTHELIA_HEALTHCHECK_SCHEME:-http}://${X_AUTHELIA_HEALTHCHECK_HOST:-localhost}:${X_AUTHELIA_HEALTHCHECK_PORT:-9091}${X_AUTHELIA_HEALTHCHECK_PATH}/api/health"
