#!/bin/sh
# Stand-in for the official redis image's entrypoint, same behaviour: a first argument that is an
# option or a .conf file means redis-server; started as root, it hands the data folder to the redis
# user and runs as that user instead; a umask of 0022 becomes 0077.
set -e
case "$1" in -* | *.conf) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec gosu redis "$0" "$@"
fi
[ "$(umask)" = 0022 ] && umask 0077
exec "$@"
