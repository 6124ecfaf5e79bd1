#!/usr/bin/env bash
# Build tailscaled, the tailscale CLI and headscale from the Go module proxy (no registry, no git).
#
#   tailscale.com/cmd/tailscaled and tailscale.com/cmd/tailscale at TAILSCALE_VERSION, with
#   `go install <pkg>@<version>` (so Tailscale's own go.mod and go.sum decide every dependency),
#   static (CGO_ENABLED=0, as Tailscale's release builds), the version stamped the way Tailscale's
#   build_dist.sh stamps it (without it the binaries report "<version>-ERR-BuildInfo").
#   github.com/juanfont/headscale/cmd/headscale at HEADSCALE_VERSION through a throwaway wrapper
#   module: `go get` of the command's package (`go get` of the module path alone leaves go.sum
#   without the command's dependencies), then `go build`.
#
# Everything Go downloads or compiles stays under $MCPGATE_CACHE/tailscale-build, so a second run
# needs neither the network nor a compile: it checks the binaries' versions and prints their paths.
# Where the module proxy refuses a module, the build stops with the proxy's message (bin/test writes
# it to the reason file the tests read, and the tests skip with it).
#
# Prints the directory holding tailscaled-v<ver>, tailscale-v<ver> and headscale-v<ver> on the last
# line of stdout.
#
# Env:
#   TAILSCALE_VERSION  default 1.102.5 (the newest that the machines' Go builds)
#   HEADSCALE_VERSION  default 0.26.1
#   MCPGATE_CACHE      cache root (default /var/cache/mcpgate)
#   GO                 go command (default: go in PATH, else /usr/local/go/bin/go)
#   FORCE=1            rebuild even if the cached binaries exist
set -euo pipefail

TAILSCALE_VERSION="${TAILSCALE_VERSION:-1.102.5}"
TAILSCALE_VERSION="${TAILSCALE_VERSION#v}"
HEADSCALE_VERSION="${HEADSCALE_VERSION:-0.26.1}"
HEADSCALE_VERSION="${HEADSCALE_VERSION#v}"
CACHE="${MCPGATE_CACHE:-/var/cache/mcpgate}"
ROOT="${CACHE}/tailscale-build"
OUT_DIR="${ROOT}/bin"
TAILSCALED="${OUT_DIR}/tailscaled-v${TAILSCALE_VERSION}"
TAILSCALE="${OUT_DIR}/tailscale-v${TAILSCALE_VERSION}"
HEADSCALE="${OUT_DIR}/headscale-v${HEADSCALE_VERSION}"

log() { printf '[tailscale-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [ -z "${GO:-}" ]; then
	if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
fi
command -v "$GO" >/dev/null 2>&1 || [ -x "$GO" ] || die "no Go toolchain (set GO=/path/to/go)"

# The version each binary must report (tailscale prints "1.102.5\n  tailscale commit: ...";
# headscale "headscale version v0.26.1" or "v0.26.1").
# The first line of a command's output (read whole: with pipefail, `| head -n 1` can fail the
# pipeline by closing it under the writer).
first_line() { local out; out=$("$@" 2>&1) || return 1; printf '%s\n' "${out%%$'\n'*}"; }

all_cached() {
	[ -x "$TAILSCALED" ] && [ -x "$TAILSCALE" ] && [ -x "$HEADSCALE" ] || return 1
	[ "$(first_line "$TAILSCALED" --version)" = "$TAILSCALE_VERSION" ] || return 1
	[ "$(first_line "$TAILSCALE" version)" = "$TAILSCALE_VERSION" ] || return 1
	case "$(first_line "$HEADSCALE" version)" in *"$HEADSCALE_VERSION"*) ;; *) return 1 ;; esac
}

if [ -z "${FORCE:-}" ] && all_cached; then
	log "cached: $OUT_DIR (tailscale $TAILSCALE_VERSION, headscale $HEADSCALE_VERSION)"
	echo "$OUT_DIR"
	exit 0
fi

mkdir -p "$ROOT"
exec 9>"${ROOT}/.lock"
flock 9
if [ -z "${FORCE:-}" ] && all_cached; then
	log "built meanwhile by another run: $OUT_DIR"
	echo "$OUT_DIR"
	exit 0
fi

export GOMODCACHE="${ROOT}/gomod"
export GOCACHE="${ROOT}/gocache"
export GOPATH="${ROOT}/gopath"
export GOFLAGS="-buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export LC_ALL=C
export GOPROXY="${GOPROXY:-$("$GO" env GOPROXY)}"
mkdir -p "$OUT_DIR" "$GOMODCACHE" "$GOCACHE" "$GOPATH"
start=$(date +%s)
log "go: $("$GO" version)"

# Tailscale. Checked first with `go mod download`, so a proxy that refuses says so in seconds.
tsmod="tailscale.com@v${TAILSCALE_VERSION}"
if ! "$GO" mod download -json "$tsmod" >"$ROOT/tailscale-download.json" 2>&1; then
	die "tailscale v${TAILSCALE_VERSION} cannot be built here: go mod download $tsmod failed: $(grep -m1 -E '"Error"|error|403|404' "$ROOT/tailscale-download.json" || tail -n 1 "$ROOT/tailscale-download.json")"
fi
# As build_dist.sh: the short and long version stamps (the commit stays empty: no git here).
ts_ldflags="-X tailscale.com/version.longStamp=${TAILSCALE_VERSION} -X tailscale.com/version.shortStamp=${TAILSCALE_VERSION}"
gobin="${ROOT}/gobin.$$"
trap 'rm -rf "$gobin"' EXIT
mkdir -p "$gobin"
for cmd in tailscaled tailscale; do
	log "building tailscale.com/cmd/${cmd}@v${TAILSCALE_VERSION}"
	GOBIN="$gobin" "$GO" install -trimpath -ldflags "$ts_ldflags" "tailscale.com/cmd/${cmd}@v${TAILSCALE_VERSION}"
done
for v in "tailscaled --version" "tailscale version"; do
	# shellcheck disable=SC2086 # "<binary> <argument>"
	got=$(first_line "$gobin"/$v) || die "$gobin/$v failed: $got"
	[ "$got" = "$TAILSCALE_VERSION" ] || die "built ${v%% *} reports '$got', expected $TAILSCALE_VERSION"
done
mv -f "$gobin/tailscaled" "$TAILSCALED"
mv -f "$gobin/tailscale" "$TAILSCALE"
# The module's source stays in the cache: the stand-in package takes its systemd unit and
# defaults file from it (cmd/tailscaled/tailscaled.service, tailscaled.defaults).
tsdir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' "$ROOT/tailscale-download.json")
[ -d "$tsdir" ] || die "go mod download gave no Dir for $tsmod"
ln -sfn "$tsdir" "${ROOT}/tailscale-src-v${TAILSCALE_VERSION}"

# headscale, through a throwaway wrapper module (regenerated every time: cheap and honest).
hsmod=github.com/juanfont/headscale
wrap="${ROOT}/headscale-wrapper/v${HEADSCALE_VERSION}"
rm -rf "$wrap"
mkdir -p "$wrap"
log "resolving ${hsmod}/cmd/headscale@v${HEADSCALE_VERSION}"
(cd "$wrap" && "$GO" mod init mcpgate.local/headscale-build >/dev/null 2>&1 \
	&& "$GO" get "${hsmod}/cmd/headscale@v${HEADSCALE_VERSION}") >"$wrap/get.log" 2>&1 \
	|| die "headscale v${HEADSCALE_VERSION} cannot be built here: $(grep -m1 -iE 'error|403|404|refus' "$wrap/get.log" || tail -n 1 "$wrap/get.log")"
log "building ${hsmod}/cmd/headscale"
(cd "$wrap" && "$GO" build -trimpath \
	-ldflags "-X ${hsmod}/hscontrol/types.Version=v${HEADSCALE_VERSION} -X ${hsmod}/hscontrol/types.GitCommitHash=module-proxy" \
	-o "$HEADSCALE.tmp" "${hsmod}/cmd/headscale")
mv -f "$HEADSCALE.tmp" "$HEADSCALE"
all_cached || die "built binaries do not report the versions asked for: tailscaled $(first_line "$TAILSCALED" --version),
  tailscale $(first_line "$TAILSCALE" version), headscale $(first_line "$HEADSCALE" version)"

log "built in $(($(date +%s) - start))s: $(cd "$OUT_DIR" && ls)"
echo "$OUT_DIR"
