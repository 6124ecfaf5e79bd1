# shellcheck shell=bash
# Shared helpers for the test-machine harness. Sourced, never executed.
#
# Every path and knob the harness uses is defined here, so the scripts and the
# README agree. All of them can be overridden from the environment.

# The Debian docker.io engine and its matching client (20.10, BuildKit built in).
MCPGATE_DOCKERD="${MCPGATE_DOCKERD:-/usr/sbin/dockerd}"
MCPGATE_DOCKER="${MCPGATE_DOCKER:-/usr/bin/docker}"
# dockerd state owned by this harness (the engine's own data stays in /var/lib/docker).
MCPGATE_DOCKERD_PIDFILE="${MCPGATE_DOCKERD_PIDFILE:-/run/mcpgate-dockerd.pid}"
MCPGATE_DOCKERD_LOG="${MCPGATE_DOCKERD_LOG:-/var/log/mcpgate-dockerd.log}"
MCPGATE_DOCKERD_TIMEOUT="${MCPGATE_DOCKERD_TIMEOUT:-60}"
# Cache for the debootstrap rootfs (survives reboots, reused by build-images.sh).
MCPGATE_CACHE="${MCPGATE_CACHE:-/var/cache/mcpgate}"
# Directory with the SSH target's config, keys, known_hosts, pidfile and log.
MCPGATE_SSHD_DIR="${MCPGATE_SSHD_DIR:-/run/mcpgate-sshd}"
MCPGATE_SSHD_PORT="${MCPGATE_SSHD_PORT:-2222}"
MCPGATE_SSHD_DEPLOY_USER="${MCPGATE_SSHD_DEPLOY_USER:-mcpgate-deploy}"

HARNESS_NAME="$(basename "$0")"

log() { printf '[%s] %s\n' "${HARNESS_NAME}" "$*" >&2; }
die() {
	printf '[%s] ERROR: %s\n' "${HARNESS_NAME}" "$*" >&2
	exit 1
}

require_root() {
	[ "$(id -u)" -eq 0 ] || die "must run as root (uid 0), not uid $(id -u)"
}

# apt_install PKG... : install missing Debian packages, without recommends and
# without starting any service (policy-rc.d on this machine already denies it).
apt_install() {
	local missing=() pkg
	for pkg in "$@"; do
		if ! dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q '^install ok installed$'; then
			missing+=("${pkg}")
		fi
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	log "installing from apt: ${missing[*]}"
	# Package lists may be absent on a fresh machine; refresh once if the install fails.
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
		log "apt-get install failed; running apt-get update and retrying"
		apt-get update -q >&2 || die "apt-get update failed"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
			die "apt-get install ${missing[*]} failed"
	fi
}

# pid_alive_as PIDFILE COMM NEEDLE : print the pid from PIDFILE if that process
# is alive, is named COMM and has NEEDLE in its command line (i.e. it is ours,
# not an unrelated process that reused the pid after a reboot).
pid_alive_as() {
	local pidfile="$1" comm="$2" needle="$3" pid
	[ -r "${pidfile}" ] || return 1
	pid="$(tr -dc '0-9' <"${pidfile}")"
	[ -n "${pid}" ] || return 1
	[ -d "/proc/${pid}" ] || return 1
	grep -q '^State:[[:space:]]*Z' "/proc/${pid}/status" 2>/dev/null && return 1
	[ "$(cat "/proc/${pid}/comm" 2>/dev/null)" = "${comm}" ] || return 1
	tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -qF -- "${needle}" || return 1
	printf '%s\n' "${pid}"
}

# pgrep_live PGREP-ARGS... : like pgrep, but without zombies (PID 1 on these
# machines reaps orphans only after a while). Status 1 if none.
pgrep_live() {
	local pid found=1
	for pid in $(pgrep "$@" || true); do
		if [ -d "/proc/${pid}" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/${pid}/status" 2>/dev/null; then
			printf '%s\n' "${pid}"
			found=0
		fi
	done
	return "${found}"
}

# descendants PID : all descendant pids of PID (children first, depth-first).
descendants() {
	local child
	for child in $(pgrep_live -P "$1" || true); do
		printf '%s\n' "${child}"
		descendants "${child}"
	done
}

# wait_gone TIMEOUT PID... : wait until none of the pids exists; 1 on timeout.
wait_gone() {
	local timeout="$1" deadline pid alive
	shift
	deadline=$((SECONDS + timeout))
	while :; do
		alive=0
		for pid in "$@"; do
			if [ -d "/proc/${pid}" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/${pid}/status" 2>/dev/null; then
				alive=1
			fi
		done
		[ "${alive}" -eq 0 ] && return 0
		[ "${SECONDS}" -ge "${deadline}" ] && return 1
		sleep 0.5
	done
}

# harness_lock NAME : serialize concurrent runs of the scripts sharing NAME
# (an flock held until the script exits).
harness_lock() {
	local lockfile="/run/lock/mcpgate-harness-$1.lock"
	mkdir -p /run/lock
	exec 9>"${lockfile}"
	if ! flock -n 9; then
		log "waiting for another harness run holding ${lockfile}"
		flock -w 1800 9 || die "timed out waiting for ${lockfile}"
	fi
}

docker_answers() {
	timeout 10 "${MCPGATE_DOCKER}" info >/dev/null 2>&1
}
