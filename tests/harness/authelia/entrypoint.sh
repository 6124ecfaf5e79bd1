#!/bin/sh
# Stand-in for the official image's /app/entrypoint.sh, same behaviour: any command other than
# authelia's own options runs as given; a non-root user runs authelia directly; as root it chowns
# /config to PUID:PGID and runs authelia as that user.
[ -n "${UMASK}" ] && umask "${UMASK}"
if [ -n "$1" ] && [ "$1" != "--config" ]; then
	exec "$@"
elif [ "$(id -u)" != 0 ] || [ "$(id -g)" != 0 ]; then
	exec authelia "$@"
fi
chown -R "${PUID}:${PGID}" /config
exec setpriv --reuid="${PUID}" --regid="${PGID}" --clear-groups authelia "$@"
