#!/usr/bin/env bash
# Stop the SSH target that sshd-up.sh started, and only that one: its
# ControlMaster connections, its session processes and the listener named in
# $MCPGATE_SSHD_DIR/sshd.pid. Keys and configs stay for the next sshd-up.sh,
# unless --purge is given (then the whole state directory goes).
# Safe to run any number of times.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

purge=0
for arg in "$@"; do
	case "${arg}" in
	--purge) purge=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument: ${arg} (try --help)" ;;
	esac
done

require_root
harness_lock sshd

dir="${MCPGATE_SSHD_DIR}"
cfg="${dir}/sshd_config"
pidfile="${dir}/sshd.pid"
ssh_cfg="${dir}/ssh_config"

# 1. Client-side ControlMaster processes using our control sockets.
if [ -d "${dir}/cm" ]; then
	for sock in "${dir}/cm/"*; do
		[ -S "${sock}" ] || continue
		ssh -F "${ssh_cfg}" -S "${sock}" -O exit mcpgate-test >/dev/null 2>&1 || true
	done
	# A master that did not answer -O exit: its title names our socket path.
	masters="$(pgrep_live -f -- "^ssh: ${dir}/cm/" || true)"
	if [ -n "${masters}" ]; then
		log "stopping ssh ControlMaster process(es): $(echo "${masters}" | tr '\n' ' ')"
		# shellcheck disable=SC2086 # word splitting of the pid list is intended
		kill -TERM ${masters} 2>/dev/null || true
		# shellcheck disable=SC2086
		wait_gone 5 ${masters} || kill -KILL ${masters} 2>/dev/null || true
	fi
	rm -f "${dir}/cm/"*
fi

# 2. The listener and the per-connection sshd processes it forked.
if pid="$(pid_alive_as "${pidfile}" sshd "-f ${cfg}")"; then
	sessions="$(descendants "${pid}")"
	log "stopping our sshd pid ${pid}"
	kill -TERM "${pid}"
	wait_gone 10 "${pid}" || kill -KILL "${pid}" 2>/dev/null || true
	wait_gone 5 "${pid}" || die "sshd pid ${pid} survived SIGKILL"
	if [ -n "${sessions}" ]; then
		log "ending its session process(es): $(echo "${sessions}" | tr '\n' ' ')"
		# shellcheck disable=SC2086
		kill -TERM ${sessions} 2>/dev/null || true
		# shellcheck disable=SC2086
		wait_gone 5 ${sessions} || kill -KILL ${sessions} 2>/dev/null || true
	fi
	log "sshd stopped"
else
	log "no sshd of ours is running; nothing to stop"
fi
rm -f "${pidfile}"

if [ "${purge}" -eq 1 ] && [ -d "${dir}" ]; then
	log "--purge: removing ${dir} (keys, configs, known_hosts, log)"
	rm -rf --one-file-system "${dir}"
fi

left="$(pgrep_live -f -- "-f ${cfg}" || true)"
[ -z "${left}" ] || die "sshd processes of ours are still running: ${left}"
