#!/usr/bin/env bash
# Start ONE Docker engine (Debian's docker.io) on a test machine without systemd.
#
# - installs docker.io from apt if dockerd is missing;
# - does nothing if a Docker engine already answers `docker info`;
# - never starts a second dockerd: if a dockerd process exists but does not
#   answer, it waits for it (if it is ours) or fails;
# - starts dockerd in the background with overlay2, falling back to vfs if
#   overlay2 does not come up, logs to $MCPGATE_DOCKERD_LOG and writes
#   $MCPGATE_DOCKERD_PIDFILE, then waits (bounded) until it answers.
#
# Safe to run any number of times. Exports nothing: use /usr/bin/docker
# (20.10, `DOCKER_BUILDKIT=1` for builds) from your own scripts.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

require_root
harness_lock docker

if [ ! -x "${MCPGATE_DOCKERD}" ] || [ ! -x "${MCPGATE_DOCKER}" ]; then
	apt_install docker.io
fi
[ -x "${MCPGATE_DOCKERD}" ] || die "${MCPGATE_DOCKERD} missing even after installing docker.io"
[ -x "${MCPGATE_DOCKER}" ] || die "${MCPGATE_DOCKER} missing even after installing docker.io"

report_ready() {
	local driver version
	driver="$("${MCPGATE_DOCKER}" info --format '{{.Driver}}' 2>/dev/null || echo '?')"
	version="$("${MCPGATE_DOCKER}" version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
	log "docker engine ${version} ready (storage driver ${driver}); $1"
	log "use ${MCPGATE_DOCKER} (DOCKER_BUILDKIT=1 for builds); log ${MCPGATE_DOCKERD_LOG}"
}

# Wait until the engine answers, or PID exits, or the timeout passes.
# Returns 0 ready, 1 process exited, 2 timeout.
wait_ready() {
	local pid="$1" deadline=$((SECONDS + MCPGATE_DOCKERD_TIMEOUT))
	while [ "${SECONDS}" -lt "${deadline}" ]; do
		docker_answers && return 0
		kill -0 "${pid}" 2>/dev/null || return 1
		sleep 1
	done
	docker_answers && return 0
	return 2
}

# 1. An engine already answers: whoever started it, leave it alone.
if docker_answers; then
	if ours="$(pid_alive_as "${MCPGATE_DOCKERD_PIDFILE}" dockerd "--pidfile=${MCPGATE_DOCKERD_PIDFILE}")"; then
		report_ready "already running (pid ${ours}, started by this harness)"
	else
		report_ready "already running (not started by this harness; left alone)"
	fi
	exit 0
fi

# 2. A dockerd process exists but does not answer (yet): never start a second one.
if others="$(pgrep_live -x dockerd)"; then
	if ours="$(pid_alive_as "${MCPGATE_DOCKERD_PIDFILE}" dockerd "--pidfile=${MCPGATE_DOCKERD_PIDFILE}")"; then
		log "dockerd pid ${ours} (ours) is running but not answering yet; waiting up to ${MCPGATE_DOCKERD_TIMEOUT}s"
		rc=0
		wait_ready "${ours}" || rc=$?
		[ "${rc}" -eq 0 ] || die "our dockerd pid ${ours} did not become ready; see ${MCPGATE_DOCKERD_LOG} (stop it with docker-down.sh)"
		report_ready "was already starting (pid ${ours})"
		exit 0
	fi
	die "a dockerd not started by this harness is running (pid(s): $(echo "${others}" | tr '\n' ' ')) but 'docker info' does not answer; refusing to start a second dockerd"
fi

# 3. Start ours. A stale pidfile (e.g. after a reboot) would make dockerd refuse to start.
if [ -e "${MCPGATE_DOCKERD_PIDFILE}" ]; then
	log "removing stale pidfile ${MCPGATE_DOCKERD_PIDFILE}"
	rm -f "${MCPGATE_DOCKERD_PIDFILE}"
fi
mkdir -p "$(dirname "${MCPGATE_DOCKERD_LOG}")" "$(dirname "${MCPGATE_DOCKERD_PIDFILE}")"

# Storage drivers to try, in order (space-separated).
read -r -a drivers <<<"${MCPGATE_DOCKER_STORAGE_DRIVER:-overlay2 vfs}"
[ "${#drivers[@]}" -gt 0 ] || die "MCPGATE_DOCKER_STORAGE_DRIVER is empty"

for driver in "${drivers[@]}"; do
	printf '\n===== %s mcpgate harness: starting dockerd --storage-driver=%s =====\n' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${driver}" >>"${MCPGATE_DOCKERD_LOG}"
	log "starting dockerd (storage driver ${driver}), log ${MCPGATE_DOCKERD_LOG}"
	# setsid: its own session, so it outlives the shell that started it;
	# 9>&-: it must not inherit the harness lock.
	setsid "${MCPGATE_DOCKERD}" \
		--storage-driver="${driver}" \
		--pidfile="${MCPGATE_DOCKERD_PIDFILE}" \
		</dev/null >>"${MCPGATE_DOCKERD_LOG}" 2>&1 9>&- &
	pid=$!
	rc=0
	wait_ready "${pid}" || rc=$?
	case "${rc}" in
	0)
		report_ready "started (pid ${pid}, pidfile ${MCPGATE_DOCKERD_PIDFILE})"
		exit 0
		;;
	1)
		wait "${pid}" 2>/dev/null || true
		log "dockerd with storage driver ${driver} exited during startup; last log lines:"
		tail -n 5 "${MCPGATE_DOCKERD_LOG}" | sed 's/^/    /' >&2
		rm -f "${MCPGATE_DOCKERD_PIDFILE}"
		;;
	*)
		log "dockerd pid ${pid} did not answer within ${MCPGATE_DOCKERD_TIMEOUT}s; stopping it"
		kill -TERM "${pid}" 2>/dev/null || true
		wait_gone 30 "${pid}" || kill -KILL "${pid}" 2>/dev/null || true
		rm -f "${MCPGATE_DOCKERD_PIDFILE}"
		die "dockerd did not become ready; see ${MCPGATE_DOCKERD_LOG}"
		;;
	esac
done
die "dockerd failed to start with storage driver(s): ${drivers[*]}; see ${MCPGATE_DOCKERD_LOG}"
