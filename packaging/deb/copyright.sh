#!/bin/sh
# copyright.sh BINARY prints debian/copyright for the egressfw package: the
# static header, one paragraph per Go module linked into BINARY (from
# `go version -m` and each module's LICENSE in the module cache), then the
# licence texts. It fails on a module whose licence it does not recognise.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
modcache=$("$go" env GOMODCACHE)

cat "$here/copyright.in"
"$go" version -m "$bin" | awk '$1 == "dep" { print $2, $3 }' | while read -r mod ver; do
	# The module cache escapes upper case as !lower.
	dir="$modcache/$(printf '%s' "$mod" | sed 's/[A-Z]/!&/g' | tr 'A-Z' 'a-z')@$ver"
	lic=$(ls "$dir"/LICENSE* "$dir"/LICENCE* "$dir"/COPYING* 2>/dev/null | head -n 1)
	[ -n "$lic" ] || { echo "copyright.sh: no licence file for $mod@$ver in $dir" >&2; exit 1; }
	if grep -q 'Apache License' "$lic"; then
		name=Apache-2.0
	elif grep -q 'Permission is hereby granted, free of charge' "$lic"; then
		name=Expat
	elif grep -q 'Neither the name' "$lic"; then
		name=BSD-3-Clause
	else
		echo "copyright.sh: unrecognised licence in $lic" >&2
		exit 1
	fi
	# The first "Copyright ..." line, without the appendix template of Apache-2.0.
	holder=$(grep -E '^[#[:space:]]*Copyright' "$lic" | grep -v 'yyyy' | head -n 1 |
		sed -E 's/^[#[:space:]]*Copyright[[:space:]]*(\([cC]\)|©)?[[:space:]]*//; s/[[:space:]]+$//') || true
	[ -n "$holder" ] || holder="the $mod authors"
	printf '\nFiles: vendor/%s/*\nCopyright: %s\nLicense: %s\nComment: %s %s\n' "$mod" "$holder" "$name" "$mod" "$ver"
done
cat "$here/licenses.in"
