#!/usr/bin/env bash
# Build the local images the tests deploy, without any container registry.
#
#   1. a `debootstrap --variant=minbase bookworm` rootfs, cached under
#      $MCPGATE_CACHE/harness/rootfs (a second run reuses it);
#   2. `docker import` of that rootfs, with the machine's proxy CA installed,
#      as mcpgate-local/base:bookworm;
#   3. FROM that base, with Debian packages (Dockerfiles in images/<name>/):
#      mcpgate-local/redis:7.0.15, mcpgate-local/caddy:2.6.2,
#      mcpgate-local/python:3.11-bookworm, each also tagged with the exact
#      Debian package version it contains.
#
# An image that already exists is skipped unless --rebuild is given.
# Needs a running engine: run docker-up.sh first.
#
# Usage: build-images.sh [--rebuild] [--refresh-rootfs]
#   --rebuild         rebuild every image (the cached rootfs is reused)
#   --refresh-rootfs  run debootstrap again (implies --rebuild)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

HARNESS_DIR="$(dirname "$(readlink -f "$0")")"
SUITE=bookworm
BASE_IMAGE=mcpgate-local/base:bookworm
# name | main tag | Debian package whose version the image is pinned to | expected upstream version prefix
IMAGES=(
	"redis|mcpgate-local/redis:7.0.15|redis-server|7.0.15-"
	"caddy|mcpgate-local/caddy:2.6.2|caddy|2.6.2-"
	"python|mcpgate-local/python:3.11-bookworm|python3.11|3.11."
	"dayone-host|mcpgate-local/dayone-host:bookworm|systemd|252."
	"engine|mcpgate-local/engine:20.10|docker.io|20.10."
)

rebuild=0
refresh_rootfs=0
for arg in "$@"; do
	case "${arg}" in
	--rebuild) rebuild=1 ;;
	--refresh-rootfs) refresh_rootfs=1 rebuild=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument: ${arg} (try --help)" ;;
	esac
done

require_root
harness_lock build-images
apt_install debootstrap
docker_answers || die "no Docker engine answers '${MCPGATE_DOCKER} info'; run tests/harness/docker-up.sh first"

docker_() { "${MCPGATE_DOCKER}" "$@"; }
image_exists() { docker_ image inspect "$1" >/dev/null 2>&1; }

# The Debian mirrors apt uses on this machine (deb822 .sources and one-line .list).
apt_uris() {
	{
		grep -hE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null |
			sed -E 's/^[[:space:]]*URIs:[[:space:]]*//' | tr ' ' '\n'
		grep -hE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			sed -E 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' | awk '{print $1}'
	} | sed -E 's:/+$::' | grep -E '^https?://' || true
}
MIRROR="${MCPGATE_DEBIAN_MIRROR:-$(apt_uris | grep -E '/debian$' | head -n 1 || true)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${MCPGATE_DEBIAN_SECURITY_MIRROR:-$(apt_uris | grep -E '/debian-security$' | head -n 1 || true)}"
SECURITY_MIRROR="${SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

CA_FILES=()
for f in /usr/local/share/ca-certificates/*.crt; do
	[ -f "${f}" ] && CA_FILES+=("${f}")
done
[ "${#CA_FILES[@]}" -gt 0 ] || log "warning: no CA certificates in /usr/local/share/ca-certificates; HTTPS through the proxy will fail inside images"

ROOTFS_DIR="${MCPGATE_CACHE}/harness/rootfs/${SUITE}-minbase"
ROOTFS_DONE="${ROOTFS_DIR}.complete"
LOG_DIR="${MCPGATE_CACHE}/harness/logs"
mkdir -p "$(dirname "${ROOTFS_DIR}")" "${LOG_DIR}"

STAGING=""
cleanup() {
	if [ -n "${STAGING}" ] && [ -d "${STAGING}" ]; then
		rm -rf --one-file-system "${STAGING}"
	fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- 1. rootfs
if [ "${refresh_rootfs}" -eq 1 ] && [ -e "${ROOTFS_DONE}" ]; then
	log "--refresh-rootfs: discarding cached rootfs ${ROOTFS_DIR}"
	rm -f "${ROOTFS_DONE}"
fi
if [ -e "${ROOTFS_DONE}" ] && [ -x "${ROOTFS_DIR}/bin/bash" ]; then
	log "rootfs: cached ${ROOTFS_DIR} ($(cat "${ROOTFS_DONE}"))"
else
	rm -rf --one-file-system "${ROOTFS_DIR}"
	start=${SECONDS}
	log "rootfs: debootstrap --variant=minbase ${SUITE} from ${MIRROR} (log ${LOG_DIR}/debootstrap.log)"
	if ! debootstrap --variant=minbase --include=ca-certificates "${SUITE}" "${ROOTFS_DIR}" "${MIRROR}" \
		>"${LOG_DIR}/debootstrap.log" 2>&1; then
		tail -n 20 "${LOG_DIR}/debootstrap.log" | sed 's/^/    /' >&2
		rm -rf --one-file-system "${ROOTFS_DIR}"
		die "debootstrap failed; see ${LOG_DIR}/debootstrap.log"
	fi
	printf 'debootstrap %s from %s on %s\n' "${SUITE}" "${MIRROR}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"${ROOTFS_DONE}"
	log "rootfs: done in $((SECONDS - start))s"
fi

# ---------------------------------------------------------------- 2. base image
# Remove an image's old id after it was re-tagged, if nothing else uses it.
drop_if_dangling() {
	local old="$1"
	[ -n "${old}" ] || return 0
	if [ -z "$(docker_ image inspect --format '{{join .RepoTags " "}}' "${old}" 2>/dev/null)" ]; then
		docker_ image rm "${old}" >/dev/null 2>&1 || log "kept old image ${old} (still in use)"
	fi
}

build_base() {
	local old debian_version start
	start=${SECONDS}
	old="$(docker_ image inspect --format '{{.Id}}' "${BASE_IMAGE}" 2>/dev/null || true)"
	STAGING="$(mktemp -d "$(dirname "${ROOTFS_DIR}")/staging.XXXXXX")"
	log "base: preparing a copy of the rootfs in ${STAGING}"
	cp -a "${ROOTFS_DIR}/." "${STAGING}/"

	# apt: the machine's mirrors, with updates and security; no recommends; no
	# package caches left in layers; never start services.
	cat >"${STAGING}/etc/apt/sources.list" <<-EOF
		deb ${MIRROR} ${SUITE} main
		deb ${MIRROR} ${SUITE}-updates main
		deb ${SECURITY_MIRROR} ${SUITE}-security main
	EOF
	cat >"${STAGING}/etc/apt/apt.conf.d/90mcpgate" <<-'EOF'
		APT::Install-Recommends "false";
		APT::Install-Suggests "false";
		Acquire::Retries "3";
		DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
		Dir::Cache::pkgcache "";
		Dir::Cache::srcpkgcache "";
	EOF
	# dpkg: no docs, man pages or translations in images (copyright files stay).
	mkdir -p "${STAGING}/etc/dpkg/dpkg.cfg.d"
	cat >"${STAGING}/etc/dpkg/dpkg.cfg.d/90mcpgate-nodoc" <<-'EOF'
		path-exclude=/usr/share/doc/*
		path-include=/usr/share/doc/*/copyright
		path-exclude=/usr/share/man/*
		path-exclude=/usr/share/info/*
		path-exclude=/usr/share/lintian/*
		path-exclude=/usr/share/locale/*
		path-include=/usr/share/locale/locale.alias
	EOF
	printf '#!/bin/sh\n# Images never start services from package scripts.\nexit 101\n' >"${STAGING}/usr/sbin/policy-rc.d"
	chmod 0755 "${STAGING}/usr/sbin/policy-rc.d"
	find "${STAGING}/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
	find "${STAGING}/usr/share/doc" -mindepth 1 -type d -empty -delete
	rm -rf "${STAGING}/usr/share/man/"* "${STAGING}/usr/share/info/"* "${STAGING}/usr/share/lintian/"*
	find "${STAGING}/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +

	# The TLS-intercepting proxy's CA, trusted system-wide in the image.
	if [ "${#CA_FILES[@]}" -gt 0 ]; then
		cp "${CA_FILES[@]}" "${STAGING}/usr/local/share/ca-certificates/"
	fi
	chroot "${STAGING}" /usr/sbin/update-ca-certificates --fresh >"${LOG_DIR}/update-ca-certificates.log" 2>&1 ||
		die "update-ca-certificates failed in the rootfs; see ${LOG_DIR}/update-ca-certificates.log"

	rm -rf "${STAGING}/var/lib/apt/lists/"* "${STAGING}/var/cache/apt/"*.bin \
		"${STAGING}/var/cache/apt/archives/"*.deb "${STAGING}/var/cache/debconf/"*-old \
		"${STAGING}/var/log/"*.log "${STAGING}/var/log/apt/"* "${STAGING}/tmp/"* "${STAGING}/var/tmp/"*
	: >"${STAGING}/etc/resolv.conf"
	printf 'mcpgate\n' >"${STAGING}/etc/hostname"
	debian_version="$(cat "${STAGING}/etc/debian_version")"

	log "base: docker import as ${BASE_IMAGE} (Debian ${debian_version})"
	tar -C "${STAGING}" --numeric-owner --xattrs --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . |
		docker_ import \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'ENV LANG=C.UTF-8' \
			--change 'CMD ["/bin/bash"]' \
			--change "LABEL io.mcpgate.harness.base=\"debootstrap minbase ${SUITE} ${debian_version}\"" \
			--message "mcpgate harness: debootstrap --variant=minbase ${SUITE} (${MIRROR})" \
			- "${BASE_IMAGE}" >/dev/null
	docker_ tag "${BASE_IMAGE}" "mcpgate-local/base:${SUITE}-${debian_version}"
	rm -rf --one-file-system "${STAGING}"
	STAGING=""
	drop_if_dangling "${old}"
	log "base: done in $((SECONDS - start))s"
}

if [ "${rebuild}" -eq 1 ] || ! image_exists "${BASE_IMAGE}"; then
	build_base
else
	log "base: ${BASE_IMAGE} exists, skipping (use --rebuild to rebuild)"
fi

# ---------------------------------------------------------------- 3. derived images
# Docker tags allow [A-Za-z0-9_.-]: drop the epoch, map ~ and + to -.
tag_safe() { printf '%s' "$1" | sed -E 's/^[0-9]+://; s/[^A-Za-z0-9_.-]/-/g'; }

# Candidate versions of the pinned packages, as apt inside the base image sees them.
declare -A CANDIDATE=()
resolve_versions() {
	local pkgs=() entry name tag pkg prefix line
	for entry in "${IMAGES[@]}"; do
		IFS='|' read -r name tag pkg prefix <<<"${entry}"
		pkgs+=("${pkg}")
	done
	log "resolving Debian package versions inside ${BASE_IMAGE}: ${pkgs[*]}"
	local out
	# shellcheck disable=SC2016 # expanded by the shell inside the container
	out="$(docker_ run --rm "${BASE_IMAGE}" sh -ec \
		'apt-get update -qq >/dev/null; for p in "$@"; do printf "%s %s\n" "$p" "$(apt-cache policy "$p" | sed -n "s/^ *Candidate: //p")"; done' \
		sh "${pkgs[@]}")" || die "could not run apt-get update inside ${BASE_IMAGE} (network/DNS from containers?)"
	while read -r pkg line; do
		if [ -z "${line}" ] || [ "${line}" = "(none)" ]; then
			die "Debian package ${pkg} has no candidate version in ${BASE_IMAGE}"
		fi
		CANDIDATE["${pkg}"]="${line}"
	done <<<"${out}"
}

# What an image is built from: every file of images/<name>/. An image whose label differs is stale.
recipe_sha() { (cd "${HARNESS_DIR}/images/$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1); }
recipe_label() { docker_ image inspect --format '{{ index .Config.Labels "io.mcpgate.harness.recipe" }}' "$1" 2>/dev/null || true; }

build_one() {
	local name="$1" tag="$2" pkg="$3" prefix="$4" version upstream exact old start log_file repo
	version="${CANDIDATE[${pkg}]}"
	upstream="${version#*:}"
	case "${upstream}" in
	"${prefix}"*) ;;
	*) die "${name}: Debian ${pkg} is ${version}, expected ${prefix}*; ${tag} would be mislabelled" ;;
	esac
	repo="${tag%:*}"
	exact="${repo}:$(tag_safe "${version}")"
	log_file="${LOG_DIR}/build-${name}.log"
	old="$(docker_ image inspect --format '{{.Id}}' "${tag}" 2>/dev/null || true)"
	start=${SECONDS}
	log "${name}: building ${tag} and ${exact} (${pkg}=${version}), log ${log_file}"
	if ! DOCKER_BUILDKIT=1 "${MCPGATE_DOCKER}" build --progress=plain \
		--build-arg "BASE_IMAGE=${BASE_IMAGE}" \
		--build-arg "DEB_VERSION=${version}" \
		--label "io.mcpgate.harness.package=${pkg}=${version}" \
		--label "io.mcpgate.harness.recipe=$(recipe_sha "${name}")" \
		-t "${tag}" -t "${exact}" \
		"${HARNESS_DIR}/images/${name}" >"${log_file}" 2>&1; then
		tail -n 30 "${log_file}" | sed 's/^/    /' >&2
		die "${name}: docker build failed; see ${log_file}"
	fi
	drop_if_dangling "${old}"
	log "${name}: done in $((SECONDS - start))s"
}

todo=()
for entry in "${IMAGES[@]}"; do
	IFS='|' read -r name tag _ _ <<<"${entry}"
	[ -f "${HARNESS_DIR}/images/${name}/Dockerfile" ] || die "missing ${HARNESS_DIR}/images/${name}/Dockerfile"
	if [ "${rebuild}" -eq 1 ] || ! image_exists "${tag}"; then
		todo+=("${entry}")
	elif [ "$(recipe_label "${tag}")" != "$(recipe_sha "${name}")" ]; then
		log "${name}: ${tag} was built from another recipe (images/${name}/ changed): rebuilding"
		todo+=("${entry}")
	else
		log "${name}: ${tag} exists, skipping (use --rebuild to rebuild)"
	fi
done
if [ "${#todo[@]}" -gt 0 ]; then
	resolve_versions
	for entry in "${todo[@]}"; do
		IFS='|' read -r name tag pkg prefix <<<"${entry}"
		build_one "${name}" "${tag}" "${pkg}" "${prefix}"
	done
fi

log "local images:"
docker_ image ls --filter 'reference=mcpgate-local/*' \
	--format 'table {{.Repository}}:{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}'
