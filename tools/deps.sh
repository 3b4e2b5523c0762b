#!/usr/bin/env bash
# tools/deps.sh: the system packages `make test` needs (run by `make deps`,
# which `make test` runs first). Each need is probed by what the tests use (a
# command, a directory), not by package name, so a tool installed some other
# way counts. When something is missing:
#   - as root on Debian, it runs apt-get update and apt-get install for the
#     missing packages, then probes again;
#   - otherwise it prints the one apt-get command to run and exits 1 at once.
# npm packages are not handled here: the make targets that need them run
# `npm ci` in web/test and wasm/worker from their lockfiles.
set -euo pipefail

# Go must be new enough to fetch the toolchain go.mod names (GOTOOLCHAIN
# switching exists since Go 1.21).
min_go_minor=21

missing=()   # Debian packages to install
manual=()    # needs apt-get cannot meet

have() { command -v "$1" >/dev/null 2>&1; }

# go_minor prints the minor version of the local go command (1.N), or nothing.
go_minor() {
  have go || return 0
  GOTOOLCHAIN=local go version 2>/dev/null | sed -n 's/^go version go1\.\([0-9]*\).*/\1/p'
}

# candidate_minor prints the Go minor version apt would install as golang-go.
candidate_minor() {
  have apt-cache || return 0
  apt-cache policy golang-go 2>/dev/null | sed -n 's/^ *Candidate: \([0-9]*:\)\{0,1\}1\.\([0-9]*\).*/\2/p' | head -n1
}

probe() {
  missing=() manual=()
  local minor
  minor=$(go_minor)
  if [ -z "$minor" ] || [ "$minor" -lt "$min_go_minor" ]; then
    local cand
    cand=$(candidate_minor)
    if [ -n "$cand" ] && [ "$cand" -ge "$min_go_minor" ]; then
      missing+=(golang-go)
    else
      local have_go=none apt_go=unavailable
      [ -z "$minor" ] || have_go="go1.$minor"
      [ -z "$cand" ] || apt_go="go1.$cand"
      manual+=("Go 1.$min_go_minor or newer, to fetch the toolchain go.mod names (found: $have_go; apt's golang-go: $apt_go): see https://go.dev/dl/")
    fi
  fi
  [ -r /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
  have node || missing+=(nodejs)
  have npm || missing+=(npm)
  have "${CHROMIUM:-chromium}" || missing+=(chromium)
  [ -d /usr/share/libonnx-testdata/data/node ] || missing+=(libonnx-testdata)
}

probe
if [ ${#missing[@]} -eq 0 ] && [ ${#manual[@]} -eq 0 ]; then
  exit 0
fi

if [ ${#manual[@]} -gt 0 ]; then
  for m in "${manual[@]}"; do echo "deps: make test needs $m" >&2; done
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && have apt-get; then
    echo "deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    probe
    if [ ${#missing[@]} -gt 0 ]; then
      echo "deps: still missing after apt-get install: ${missing[*]}" >&2
      exit 1
    fi
  else
    echo "deps: make test needs Debian packages that are not installed: ${missing[*]}" >&2
    echo "deps: install them with:" >&2
    echo >&2
    echo "    sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    echo >&2
    exit 1
  fi
fi

[ ${#manual[@]} -eq 0 ] || exit 1
