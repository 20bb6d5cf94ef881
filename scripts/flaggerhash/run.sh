#!/usr/bin/env bash
# Rebuilds progdel/canary/data/podtemplate-layout.json and tests/canary/data/flagger-hash-vectors.json,
# and checks progdel's imitation of Flagger's hashes against Go, byte for byte.
#
# Flagger 1.44 hashes a target's pod template with go-spew (commit d8f796a) over k8s.io/api
# v0.36.2's PodTemplateSpec. This builds a Go program from those sources: the type declarations
# reachable from PodTemplateSpec, copied unchanged from k8s.io/api and k8s.io/apimachinery (no
# methods but the JSON decoders of Quantity, IntOrString and Time), apimachinery's quantity
# parser, gopkg.in/inf.v0 and go-spew itself. Needs Go (Debian's golang-go is enough) and local
# git clones of the four repositories:
#
#   K8S_API=~/src/api APIMACHINERY=~/src/apimachinery SPEW=~/src/go-spew INF=~/src/inf \
#     bash scripts/flaggerhash/run.sh [fuzz seeds...]
#
# Nothing it builds is kept in the repository but the two JSON files.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
src="$work/src"
mkdir -p "$src"
git -C "$K8S_API" archive v0.36.2 core/v1 | tar x -C "$src" --one-top-level=api
git -C "$APIMACHINERY" archive v0.36.2 pkg/apis/meta/v1 pkg/api/resource pkg/util/intstr pkg/types | tar x -C "$src" --one-top-level=apimachinery
git -C "$SPEW" archive d8f796af33cc spew | tar x -C "$work" --one-top-level=spewmod
git -C "$INF" archive v0.9.1 | tar x -C "$work" --one-top-level=infmod
printf 'module github.com/davecgh/go-spew\n' > "$work/spewmod/go.mod"
rm -f "$work"/infmod/*_test.go "$work"/spewmod/spew/*_test.go
printf 'module gopkg.in/inf.v0\n' > "$work/infmod/go.mod"

# 1. the stub packages: k8s type declarations, verbatim
(cd "$here/extract" && go run . "$src" "$work/harness/k8s")
# 2. the harness program over them
mkdir -p "$work/harness/cmd"
cp "$here/harness/main.go" "$work/harness/cmd/main.go"
cat > "$work/harness/go.mod" <<MOD
module fh

go 1.19

require (
	github.com/davecgh/go-spew v1.1.2-0.20180830191138-d8f796af33cc
	gopkg.in/inf.v0 v0.9.1
)

replace github.com/davecgh/go-spew => $work/spewmod

replace gopkg.in/inf.v0 => $work/infmod
MOD
(cd "$work/harness" && go build -o "$work/fh" ./cmd)
# 3. the layout, the vectors, and the fuzzed comparison
python3 "$here/check.py" "$work/fh" "$repo" "$@"
