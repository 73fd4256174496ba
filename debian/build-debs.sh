#!/usr/bin/env bash
# debian/build-debs.sh (`make deb`): builds the two Debian packages with Debian's own tooling
# (dpkg-buildpackage, debhelper, pg_buildext) from a clean copy of this tree, checks them with
# lintian (no error allowed) and puts them in dist/.
#
#   LEADINTAKE_DEB_OUT=DIR       where the .deb files go (default: dist/ of this tree)
#   LEADINTAKE_DEB_PREPARE=CMD   a shell command run in the copy before the build (the package
#                                test uses it to make a higher version: test/package/run.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/lib.sh"
out=${LEADINTAKE_DEB_OUT:-$here/dist}

# The build dependencies of debian/control, and the tools.
li_ensure_packages build-essential make gcc libc6-dev dpkg-dev debhelper postgresql-server-dev-all \
    libmicrohttpd-dev libphonenumber-dev libpq-dev pkg-config lintian git

stage=$here/build/deb
rm -rf "$stage"
mkdir -p "$stage/src" "$out"
# The tracked files (with their uncommitted changes) and new files git does not ignore: what
# a commit would hold, without this tree's build products.
if git -C "$here" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$here" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done |
        tar -cf - --null -T -) | tar -xf - -C "$stage/src"
else
    (cd "$here" && tar -cf - --exclude=./build --exclude=./dist .) | tar -xf - -C "$stage/src"
fi
cd "$stage/src"
if [ -n "${LEADINTAKE_DEB_PREPARE:-}" ]; then
    bash -euc "$LEADINTAKE_DEB_PREPARE"
fi

# One version: the package's (debian/changelog, a native package) is the extension's
# default_version (leadintake.control). A new extension version needs a changelog entry.
pkgver=$(dpkg-parsechangelog -S Version)
extver=$(sed -n "s/^default_version *= *'\(.*\)'.*/\1/p" leadintake.control)
if [ "$pkgver" != "$extver" ]; then
    li_die "debian/changelog is at $pkgver but leadintake.control's default_version is $extver: add a changelog entry (dch -v $extver) or fix the control file"
fi

li_log "building leadintake $pkgver in $stage/src"
dpkg-buildpackage -us -uc >"$stage/build.log" 2>&1 || {
    tail -n 40 "$stage/build.log" >&2
    li_die "dpkg-buildpackage failed (whole log: $stage/build.log)"
}
changes=$(ls "$stage"/leadintake_"$pkgver"_*.changes)
# Lintian as Debian's archive runs it on an upload: errors fail the build, the rest is shown.
if ! lintian --fail-on error --info --display-level '>=info' "$changes" >"$stage/lintian.txt" 2>&1; then
    cat "$stage/lintian.txt" >&2
    li_die "lintian found errors"
fi
li_log "lintian: $(grep -c '^E:' "$stage/lintian.txt" || true) errors, $(grep -c '^W:' "$stage/lintian.txt" || true) warnings, $(grep -c '^I:' "$stage/lintian.txt" || true) infos ($stage/lintian.txt)"
grep '^[EW]:' "$stage/lintian.txt" >&2 || true
rm -f "$out"/*.deb
cp "$stage"/*_"$pkgver"_*.deb "$out"/
cp "$stage/lintian.txt" "$out/lintian.txt"
ls -l "$out"/*.deb >&2
