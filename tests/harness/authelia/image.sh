#!/usr/bin/env bash
# Build the local image mcpgate-local/authelia:<version> (no container registry).
#
#   1. build.sh builds (or finds cached) the static Authelia binary, with its web portal;
#   2. the Docker engine must answer (tests/harness/docker-up.sh is run if it exists);
#   3. the base mcpgate-local/base:bookworm is built by tests/harness/build-images.sh
#      if it is missing;
#   4. docker build FROM that base, from a small staging context in the cache holding
#      the binary, upstream's LICENSE, healthcheck.sh and the Dockerfile beside this script.
#
# Idempotent: the image is rebuilt only if it is missing, or if the binary, the base image
# or the files of this directory changed (recorded in image labels), or with --rebuild.
#
# Usage: image.sh [--rebuild]
# Env:   AUTHELIA_VERSION (default 4.39.20), MCPGATE_CACHE (default /var/cache/mcpgate),
#        MCPGATE_DOCKER (default /usr/bin/docker, else docker in PATH),
#        MCPGATE_AUTHELIA_IMAGE (the tag; default mcpgate-local/authelia:<version>)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HARNESS="$(dirname "$HERE")"
AUTHELIA_VERSION="${AUTHELIA_VERSION:-4.39.20}"
AUTHELIA_VERSION="${AUTHELIA_VERSION#v}"
export AUTHELIA_VERSION
CACHE="${MCPGATE_CACHE:-/var/cache/mcpgate}"
IMAGE="${MCPGATE_AUTHELIA_IMAGE:-mcpgate-local/authelia:${AUTHELIA_VERSION}}"
BASE_IMAGE="${MCPGATE_AUTHELIA_BASE_IMAGE:-mcpgate-local/base:bookworm}"

log() { printf '[authelia-image] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

rebuild=0
for arg in "$@"; do
	case "$arg" in
	--rebuild) rebuild=1 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument: $arg (try --help)" ;;
	esac
done

if [ -z "${MCPGATE_DOCKER:-}" ]; then
	if [ -x /usr/bin/docker ]; then MCPGATE_DOCKER=/usr/bin/docker; else MCPGATE_DOCKER=docker; fi
fi
docker_() { "$MCPGATE_DOCKER" "$@"; }
docker_answers() { timeout 10 "$MCPGATE_DOCKER" info >/dev/null 2>&1; }
label() { docker_ image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }

start=$SECONDS

# 1. the binary
bin="$("$HERE/build.sh" | tail -n 1)"
[ -x "$bin" ] || die "build.sh gave no binary"
bin_sha="$(sha256sum "$bin" | cut -d' ' -f1)"
license="$(dirname "$bin")/LICENSE-v${AUTHELIA_VERSION}"
[ -f "$license" ] || die "missing $license (run FORCE=1 build.sh)"
# What the binary embeds as its portal (build.sh writes it beside the binary).
portal="$(head -n 1 "${bin}.portal" 2>/dev/null | cut -d' ' -f2)"
[ -n "$portal" ] || die "missing ${bin}.portal (run FORCE=1 build.sh)"

# 2. the engine
if ! docker_answers; then
	if [ -x "$HARNESS/docker-up.sh" ]; then
		log "no Docker engine answers; running $HARNESS/docker-up.sh"
		"$HARNESS/docker-up.sh"
	fi
	docker_answers || die "no Docker engine answers '$MCPGATE_DOCKER info' (start one: tests/harness/docker-up.sh)"
fi

# 3. the base
if ! docker_ image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
	[ -x "$HARNESS/build-images.sh" ] || die "$BASE_IMAGE is missing and $HARNESS/build-images.sh does not exist"
	log "$BASE_IMAGE is missing; running $HARNESS/build-images.sh"
	"$HARNESS/build-images.sh"
	docker_ image inspect "$BASE_IMAGE" >/dev/null 2>&1 || die "$BASE_IMAGE still missing after build-images.sh"
fi
base_id="$(docker_ image inspect --format '{{.Id}}' "$BASE_IMAGE")"

# 4. the image: rebuilt only when one of its inputs changed.
RECIPE=(Dockerfile entrypoint.sh healthcheck.sh healthcheck.env)
recipe_sha="$(cd "$HERE" && cat "${RECIPE[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$rebuild" = 0 ] && docker_ image inspect "$IMAGE" >/dev/null 2>&1 &&
	[ "$(label "$IMAGE" io.mcpgate.authelia.binary-sha256)" = "$bin_sha" ] &&
	[ "$(label "$IMAGE" io.mcpgate.authelia.base-id)" = "$base_id" ] &&
	[ "$(label "$IMAGE" io.mcpgate.authelia.recipe-sha256)" = "$recipe_sha" ] &&
	[ "$(label "$IMAGE" io.mcpgate.authelia.portal)" = "$portal" ]; then
	log "$IMAGE is up to date ($(docker_ image inspect --format '{{.Id}}' "$IMAGE" | cut -c1-19)), skipping (use --rebuild)"
	echo "$IMAGE"
	exit 0
fi

ctx="${CACHE}/authelia-build/image-context"
rm -rf "$ctx"
mkdir -p "$ctx"
cp "$bin" "$ctx/authelia"
cp "$license" "$ctx/LICENSE"
(cd "$HERE" && cp "${RECIPE[@]}" "$ctx/")
mkdir -p "${CACHE}/logs"
log_file="${CACHE}/logs/build-authelia.log"
old="$(docker_ image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"

log "building $IMAGE FROM $BASE_IMAGE (log $log_file)"
if ! DOCKER_BUILDKIT=1 "$MCPGATE_DOCKER" build --progress=plain \
	--build-arg "BASE_IMAGE=$BASE_IMAGE" \
	--build-arg "AUTHELIA_VERSION=$AUTHELIA_VERSION" \
	--label "org.opencontainers.image.title=authelia" \
	--label "org.opencontainers.image.version=$AUTHELIA_VERSION" \
	--label "org.opencontainers.image.licenses=Apache-2.0" \
	--label "org.opencontainers.image.description=Authelia v$AUTHELIA_VERSION built from the Go module proxy with its web portal (mcpgate test harness)" \
	--label "io.mcpgate.authelia.binary-sha256=$bin_sha" \
	--label "io.mcpgate.authelia.base-id=$base_id" \
	--label "io.mcpgate.authelia.recipe-sha256=$recipe_sha" \
	--label "io.mcpgate.authelia.portal=$portal" \
	-t "$IMAGE" "$ctx" >"$log_file" 2>&1; then
	tail -n 30 "$log_file" | sed 's/^/    /' >&2
	die "docker build failed; see $log_file"
fi
rm -rf "$ctx"

# Drop the previous image if nothing is tagged with it any more.
new="$(docker_ image inspect --format '{{.Id}}' "$IMAGE")"
if [ -n "$old" ] && [ "$old" != "$new" ] && [ -z "$(docker_ image inspect --format '{{join .RepoTags " "}}' "$old" 2>/dev/null)" ]; then
	docker_ image rm "$old" >/dev/null 2>&1 || log "kept old image $old (still in use)"
fi
log "built $IMAGE ($(docker_ image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}')) in $((SECONDS - start))s"
echo "$IMAGE"
