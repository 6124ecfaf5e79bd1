#!/usr/bin/env bash
# Stop the dockerd that docker-up.sh started, and only that one.
#
# The pidfile must name a live dockerd whose command line carries our
# --pidfile; any other dockerd is left alone. Running containers are stopped by
# dockerd itself on shutdown; its managed containerd and the container shims go
# with it. Images and volumes in /var/lib/docker are kept (build-images.sh
# reuses them). Safe to run any number of times.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

require_root
harness_lock docker

# Managed containerd and shims of our dockerd talk over this socket.
containerd_sock=/var/run/docker/containerd/containerd.sock

leftovers() {
	# Processes our dockerd spawned that could outlive it: its containerd and
	# the runc shims (daemonized, so no longer its descendants).
	pgrep_live -f -- "${containerd_sock}" || true
	pgrep_live -f -- "--config /var/run/docker/containerd/containerd.toml" || true
}

unmount_leftovers() {
	# Only after an unclean stop: overlay/netns/shm mounts dockerd did not undo.
	local mnt
	findmnt -rn -o TARGET | grep -E '^(/var/lib/docker|/run/docker)/' | sort -r | while read -r mnt; do
		log "unmounting leftover ${mnt}"
		umount -l "${mnt}" || log "could not unmount ${mnt}"
	done
}

if ! pid="$(pid_alive_as "${MCPGATE_DOCKERD_PIDFILE}" dockerd "--pidfile=${MCPGATE_DOCKERD_PIDFILE}")"; then
	if [ -e "${MCPGATE_DOCKERD_PIDFILE}" ]; then
		log "removing stale pidfile ${MCPGATE_DOCKERD_PIDFILE} (no dockerd of ours behind it)"
		rm -f "${MCPGATE_DOCKERD_PIDFILE}"
	fi
	if others="$(pgrep_live -x dockerd)"; then
		log "a dockerd not started by this harness is running (pid(s): $(echo "${others}" | tr '\n' ' ')); left alone"
	else
		log "no dockerd of ours is running; nothing to stop"
	fi
	exit 0
fi

children="$(descendants "${pid}")"
running="$(timeout 10 "${MCPGATE_DOCKER}" ps --format '{{.Names}}' 2>/dev/null | tr '\n' ' ' || true)"
log "stopping our dockerd pid ${pid}${running:+; it stops the running containers: ${running}}"
kill -TERM "${pid}"
clean=1
# dockerd waits up to 15s per container before killing it; allow for that.
if ! wait_gone 60 "${pid}"; then
	log "dockerd pid ${pid} still alive after 60s; sending SIGKILL"
	kill -KILL "${pid}" 2>/dev/null || true
	wait_gone 10 "${pid}" || die "dockerd pid ${pid} survived SIGKILL"
	clean=0
fi

# Its containerd and the shims normally exit with it; give them a moment.
rest="$({
	printf '%s\n' "${children}"
	leftovers
} | grep -E '^[0-9]+$' | sort -u || true)"
if [ -n "${rest}" ]; then
	# shellcheck disable=SC2086 # word splitting of the pid list is intended
	if ! wait_gone 15 ${rest}; then
		# shellcheck disable=SC2086
		for p in ${rest}; do
			if [ -d "/proc/${p}" ]; then
				log "killing leftover $(cat "/proc/${p}/comm" 2>/dev/null || echo process) pid ${p}"
				kill -KILL "${p}" 2>/dev/null || true
			fi
		done
		# shellcheck disable=SC2086
		wait_gone 10 ${rest} || log "some leftover processes did not exit: ${rest}"
		clean=0
	fi
fi

[ "${clean}" -eq 1 ] || unmount_leftovers
rm -f "${MCPGATE_DOCKERD_PIDFILE}"

if pgrep_live -x dockerd >/dev/null || [ -n "$(leftovers)" ]; then
	die "processes are left after stopping dockerd: $(pgrep_live -x dockerd; leftovers)"
fi
log "dockerd stopped; images and volumes kept in /var/lib/docker"
