#!/usr/bin/env bash
# A stand-in for Tailscale's `tailscale` Debian package, from the binaries build.sh made, in a flat
# apt repository (Packages, Packages.gz) that a test host installs it from as it would from
# pkgs.tailscale.com (inventory: tailscale.apt_source = "deb [trusted=yes] <repo url> ./").
#
# What it mirrors of Tailscale's own package (release/dist/unixpkgs/pkgs.go debTarget at the same
# version, read from the module source build.sh keeps; tests/e2e/test_tailnet.py holds each point):
#   name tailscale, version <TAILSCALE_VERSION>, Section net, Priority extra, Depends iptables,
#   Recommends iproute2 (Tailscale's also recommends tailscale-archive-keyring, which no repository
#   here has), Replaces/Conflicts tailscale-relay;
#   /usr/bin/tailscale, /usr/sbin/tailscaled, /lib/systemd/system/{tailscaled.service,
#   tailscale-online.target,tailscale-wait-online.service} and /etc/default/tailscaled (a conffile)
#   copied byte for byte from cmd/tailscaled/, and the maintainer scripts release/deb/debian.{postinst,
#   prerm,postrm}.sh as postinst, prerm, postrm (so the service is not enabled by the install itself).
# What differs: the binaries are built by build.sh (not Tailscale's CI), the Maintainer says it is a
# stand-in, and the repository is unsigned (trusted=yes), where Tailscale signs theirs.
#
# Prints the repository's directory on the last line of stdout. A second run with the same
# binaries does nothing.
#
# Env: TAILSCALE_VERSION (default 1.102.5), MCPGATE_CACHE (default /var/cache/mcpgate).
set -euo pipefail

TAILSCALE_VERSION="${TAILSCALE_VERSION:-1.102.5}"
TAILSCALE_VERSION="${TAILSCALE_VERSION#v}"
CACHE="${MCPGATE_CACHE:-/var/cache/mcpgate}"
ROOT="${CACHE}/tailscale-build"
SRC="${ROOT}/tailscale-src-v${TAILSCALE_VERSION}"
REPO="${ROOT}/apt"

log() { printf '[tailscale-package] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for f in "${ROOT}/bin/tailscaled-v${TAILSCALE_VERSION}" "${ROOT}/bin/tailscale-v${TAILSCALE_VERSION}"; do
	[ -x "$f" ] || die "$f is missing: run tests/harness/tailscale/build.sh first"
done
[ -d "$SRC/cmd/tailscaled" ] || die "Tailscale's source $SRC is missing: run tests/harness/tailscale/build.sh first"
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing"

arch=$(dpkg --print-architecture)
deb="tailscale_${TAILSCALE_VERSION}_${arch}.deb"
# The inputs' digest: the same binaries and source give the same package, and nothing is redone.
stamp=$(cat "${ROOT}/bin/tailscaled-v${TAILSCALE_VERSION}" "${ROOT}/bin/tailscale-v${TAILSCALE_VERSION}" \
	"$SRC"/cmd/tailscaled/{tailscaled.service,tailscale-online.target,tailscale-wait-online.service,tailscaled.defaults} \
	"$SRC"/release/deb/debian.{postinst,prerm,postrm}.sh "$0" | sha256sum | cut -d' ' -f1)
if [ -f "$REPO/$deb" ] && [ -f "$REPO/Packages.gz" ] && [ "$(cat "$REPO/.stamp" 2>/dev/null)" = "$stamp" ]; then
	log "cached: $REPO/$deb"
	echo "$REPO"
	exit 0
fi

mkdir -p "$REPO"
exec 9>"${ROOT}/.package.lock"
flock 9
tree=$(mktemp -d "${ROOT}/pkgtree.XXXXXX")
trap 'rm -rf "$tree"' EXIT
chmod 0755 "$tree"  # mktemp made it 0700: the package's ./ entry
install -d -m 0755 "$tree/DEBIAN" "$tree/usr/bin" "$tree/usr/sbin" "$tree/lib/systemd/system" "$tree/etc/default"
install -m 0755 "${ROOT}/bin/tailscale-v${TAILSCALE_VERSION}" "$tree/usr/bin/tailscale"
install -m 0755 "${ROOT}/bin/tailscaled-v${TAILSCALE_VERSION}" "$tree/usr/sbin/tailscaled"
for unit in tailscaled.service tailscale-online.target tailscale-wait-online.service; do
	install -m 0644 "$SRC/cmd/tailscaled/$unit" "$tree/lib/systemd/system/$unit"
done
install -m 0644 "$SRC/cmd/tailscaled/tailscaled.defaults" "$tree/etc/default/tailscaled"
for script in postinst prerm postrm; do
	install -m 0755 "$SRC/release/deb/debian.${script}.sh" "$tree/DEBIAN/$script"
done
echo /etc/default/tailscaled >"$tree/DEBIAN/conffiles"
size_kb=$(du -sk --exclude=DEBIAN "$tree" | cut -f1)
cat >"$tree/DEBIAN/control" <<CONTROL
Package: tailscale
Version: ${TAILSCALE_VERSION}
Section: net
Priority: extra
Architecture: ${arch}
Maintainer: mcpgate test harness (stand-in for Tailscale Inc <info@tailscale.com>)
Installed-Size: ${size_kb}
Depends: iptables
Recommends: iproute2
Replaces: tailscale-relay
Conflicts: tailscale-relay
Homepage: https://www.tailscale.com
Description: The easiest, most secure, cross platform way to use WireGuard + oauth2 + 2FA/SSO
 Stand-in built by mcpgate's test harness from tailscale.com@v${TAILSCALE_VERSION} (Go module proxy).
CONTROL
dpkg-deb --root-owner-group -Zgzip --build "$tree" "$REPO/$deb.tmp" >/dev/null
mv -f "$REPO/$deb.tmp" "$REPO/$deb"

# The flat repository's index, as dpkg-scanpackages writes it (dpkg-dev is not needed).
{
	dpkg-deb -f "$REPO/$deb"
	echo "Filename: ./$deb"
	echo "Size: $(stat -c %s "$REPO/$deb")"
	echo "MD5sum: $(md5sum "$REPO/$deb" | cut -d' ' -f1)"
	echo "SHA256: $(sha256sum "$REPO/$deb" | cut -d' ' -f1)"
	echo
} >"$REPO/Packages"
gzip -9nc "$REPO/Packages" >"$REPO/Packages.gz"
chmod -R a+rX "$REPO"
echo "$stamp" >"$REPO/.stamp"
log "built $REPO/$deb ($(du -h "$REPO/$deb" | cut -f1))"
echo "$REPO"
