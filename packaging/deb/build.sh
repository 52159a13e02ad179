#!/bin/sh
# build.sh assembles the egressfw .deb with dpkg-deb (no debhelper).
#   build.sh --version        print the upstream version (for -X main.version)
#   build.sh BINARY OUTDIR    write OUTDIR/egressfw_<version>-1_<arch>.deb and
#                             print its path
# Run from anywhere inside the repository. Reproducible: file times and the
# changelog date come from the last commit (SOURCE_DATE_EPOCH).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

# version: the latest vX.Y.Z tag (commits since it become +gitN.gHASH),
# else 0.1.0.
version() {
	d=$(git -C "$top" describe --tags --match 'v[0-9]*' 2>/dev/null) || { echo 0.1.0; return; }
	echo "${d#v}" | sed -E 's/-([0-9]+)-g([0-9a-f]+)$/+git\1.g\2/'
}

if [ "${1:-}" = --version ]; then
	version
	exit 0
fi
[ $# -eq 2 ] || { echo "usage: $0 --version | BINARY OUTDIR" >&2; exit 2; }
bin=$1
out=$2

# Debian revision 1: the package is built from this tree by this script,
# and its changelog is therefore changelog.Debian.gz (policy 12.7).
ver=$(version)-1
arch=$(dpkg --print-architecture)
: "${SOURCE_DATE_EPOCH:=$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)}"
export SOURCE_DATE_EPOCH

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
umask 022

install -D -m 0755 "$bin" "$root/usr/sbin/egressfw"
install -D -m 0644 "$top/packaging/systemd/egressfw.service" "$root/lib/systemd/system/egressfw.service"
install -D -m 0644 "$top/packaging/systemd/egressfw.slice" "$root/lib/systemd/system/egressfw.slice"
install -D -m 0644 "$top/packaging/systemd/egressfw-guard.service" "$root/lib/systemd/system/egressfw-guard.service"
install -D -m 0644 "$top/packaging/systemd/egressfw-guard-watch.service" "$root/lib/systemd/system/egressfw-guard-watch.service"
# 0640: the allow_internal names are the operator's map of the network.
# postinst gives it the group egressfw-config (dpkg-statoverride), which the
# service joins (SupplementaryGroups=); other local users cannot read it.
install -D -m 0640 "$top/configs/egressfw.toml" "$root/etc/egressfw/egressfw.toml"
install -d "$root/usr/share/man/man8" "$root/usr/share/man/man5" "$root/usr/share/doc/egressfw"
gzip -9n -c "$top/packaging/man/egressfw.8" >"$root/usr/share/man/man8/egressfw.8.gz"
gzip -9n -c "$top/packaging/man/egressfw.toml.5" >"$root/usr/share/man/man5/egressfw.toml.5.gz"
"$here/copyright.sh" "$bin" >"$root/usr/share/doc/egressfw/copyright"
install -D -m 0644 "$top/packaging/grafana/egressfw.json" "$root/usr/share/egressfw/grafana/egressfw.json"
install -D -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/egressfw"

commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
	printf 'egressfw (%s) unstable; urgency=medium\n\n' "$ver"
	printf '  * Upstream build of commit %s.\n\n' "$commit"
	printf ' -- egressfw maintainers <maintainers@users.noreply.r-seed-cd3b41b1.example>  %s\n' \
		"$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$root/usr/share/doc/egressfw/changelog.Debian.gz"
chmod 0644 "$root/usr/share/doc/egressfw/"* "$root/usr/share/man/"*/*

install -d "$root/DEBIAN"
size=$(du -sk --apparent-size "$root" | cut -f1)
sed -e "s/@VERSION@/$ver/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
	"$here/control.in" >"$root/DEBIAN/control"
install -m 0644 "$here/conffiles" "$root/DEBIAN/conffiles"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$root/DEBIAN/"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
	xargs md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
deb="$out/egressfw_${ver}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
