#!/usr/bin/env bash
# Work on the patch series of a patched module copy in third_party/ in a
# scratch git repository.
#
#   series.sh FORK unpack DIR   DIR becomes a git repository: the upstream
#                               release (module cache or proxy, without the
#                               omitted directories) as the commit tagged
#                               "upstream", then one commit per patch (git am).
#   series.sh FORK export DIR   writes DIR's commits after "upstream" back as
#                               FORK/patches/NNNN-<Patch-Name>.patch and DIR's
#                               tree as FORK (POSTHOUSE-README.md and patches/
#                               stay).
#
# FORK is the copy's directory, e.g. third_party/go-imap. Its patches/UPSTREAM
# holds one line: the module path, the release the series applies to, and the
# upstream top-level directories left out (e.g. cmd). UPSTREAM_VERSION, if
# set, unpacks onto another release (to move the series to it). Each commit
# message is: a subject line, what the patch changes, a "Why:" paragraph, a
# "Test:" paragraph and a last line "Patch-Name: short-name". The tests built
# on internal/forkcheck (imapd's TestGoIMAPPatchSeries, smtpd's
# TestGoSMTPPatchSeries) check the result.
set -euo pipefail

die() { echo "series.sh: $*" >&2; exit 1; }
git_as() { git -c user.name=Posthouse -c user.email=posthouse@localhost "$@"; }

[ $# -eq 3 ] || die "usage: series.sh FORK unpack|export DIR"
fork=$(cd "$1" && pwd)
here=$fork/patches
dir=$3
read -r module version omit <"$here/UPSTREAM" || die "no $here/UPSTREAM"
version=${UPSTREAM_VERSION:-$version}

case $2 in
unpack)
	[ ! -e "$dir" ] || die "$dir exists"
	src=$(go env GOMODCACHE)/$module@$version
	if [ ! -f "$src/go.mod" ]; then
		src=$(cd / && go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	fi
	[ -f "$src/go.mod" ] || die "cannot get $module@$version"
	mkdir -p "$dir"
	cp -R "$src"/. "$dir"
	chmod -R u+w "$dir"
	for o in $omit; do rm -rf "${dir:?}/$o"; done
	cd "$dir"
	git init -q
	git add -A
	GIT_AUTHOR_DATE=2000-01-01T00:00:00Z GIT_COMMITTER_DATE=2000-01-01T00:00:00Z \
		git_as commit -q -m "$module $version (without: $omit)"
	git tag upstream
	if ls "$here"/*.patch >/dev/null 2>&1; then
		git_as am -q --committer-date-is-author-date "$here"/*.patch ||
			die "a patch does not apply: fix it and run git am --continue, or drop it with git am --skip, in $dir; then export"
	fi
	;;
export)
	cd "$dir"
	git rev-parse -q --verify upstream >/dev/null || die "$dir has no upstream tag"
	git diff --quiet HEAD && [ -z "$(git ls-files --others --exclude-standard)" ] ||
		die "$dir has uncommitted changes"
	n=0
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
	for c in $(git rev-list --reverse upstream..HEAD); do
		n=$((n + 1))
		name=$(git log -1 --format='%(trailers:key=Patch-Name,valueonly)' "$c" | head -n 1)
		[ -n "$name" ] || die "commit $(git log -1 --format='%h %s' "$c") has no Patch-Name: line"
		git format-patch -1 --zero-commit --no-signature --no-numbered --stdout "$c" \
			>"$out/$(printf %04d "$n")-$name.patch"
	done
	rm -f "$here"/*.patch
	cp "$out"/*.patch "$here"/
	find "$fork" -mindepth 1 -maxdepth 1 ! -name patches ! -name POSTHOUSE-README.md -exec rm -rf {} +
	git archive HEAD | tar -x -C "$fork"
	echo "series.sh: $n patches in $here; now update the table in $fork/POSTHOUSE-README.md"
	;;
*)
	die "usage: series.sh FORK unpack|export DIR"
	;;
esac
