#!/usr/bin/env bash
# check-breaking.sh [BASE-REF]: fails when openapi.yaml (as it is in the work
# tree) breaks clients of the API as it was at BASE-REF, unless info.version's
# major number went up.
#
# BASE-REF, when not given, is the newest tag v* reachable from HEAD; without
# one, the merge base with origin/main; without that, the first commit that
# has openapi.yaml. The comparison is oasdiff's (`go tool oasdiff breaking`,
# pinned in go.mod), at level ERR.
#
# It checks the git repository of the current directory; the Go module that
# provides oasdiff is the one this script lives in.
set -euo pipefail

spec=openapi.yaml
tools="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(git rev-parse --show-toplevel)"
cd "$repo"

base="${1:-}"
how="given"
if [ -z "$base" ]; then
  if base="$(git describe --tags --abbrev=0 --match 'v*' HEAD 2>/dev/null)"; then
    how="newest tag"
  elif git rev-parse --verify --quiet origin/main >/dev/null && base="$(git merge-base HEAD origin/main 2>/dev/null)"; then
    how="merge base with origin/main"
  else
    base="$(git log --diff-filter=A --format=%H -- "$spec" | tail -n 1)"
    how="first commit with $spec"
  fi
fi
if [ -z "$base" ] || ! git cat-file -e "$base:$spec" 2>/dev/null; then
  echo "check-breaking: no $spec at ${base:-any commit} ($how): nothing to compare"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
git show "$base:$spec" >"$tmp/base.yaml"
cp "$spec" "$tmp/revision.yaml"

# info.version of a spec: the "version:" line right under "info:".
version_of() {
  awk '/^info:/ { inside = 1; next }
       inside && /^[^ #]/ { exit }
       inside && /^  version:/ { sub(/^  version:[ \t]*/, ""); gsub(/["'\'' \t\r]/, ""); print; exit }' "$1"
}
major_of() {
  local v="${1#v}"
  v="${v%%.*}"
  case "$v" in '' | *[!0-9]*) echo "" ;; *) echo "$((10#$v))" ;; esac
}
old_version="$(version_of "$tmp/base.yaml")"
new_version="$(version_of "$tmp/revision.yaml")"
echo "check-breaking: $spec against $base ($how): info.version $old_version -> $new_version"

set +e
(cd "$tools" && go tool oasdiff breaking "$tmp/base.yaml" "$tmp/revision.yaml" \
  --fail-on ERR --allow-external-refs=false --color never) >"$tmp/report.txt" 2>&1
status=$?
set -e
cat "$tmp/report.txt"

case "$status" in
0)
  echo "check-breaking: no breaking change"
  exit 0
  ;;
1) ;;
*)
  echo "check-breaking: oasdiff failed (exit $status)" >&2
  exit "$status"
  ;;
esac

old_major="$(major_of "$old_version")"
new_major="$(major_of "$new_version")"
if [ -n "$old_major" ] && [ -n "$new_major" ] && [ "$new_major" -gt "$old_major" ]; then
  echo "check-breaking: breaking changes allowed: the major version went up ($old_version -> $new_version)"
  exit 0
fi
echo "check-breaking: FAIL: breaking changes need a new major version in info.version (it is $old_version -> $new_version)" >&2
exit 1
