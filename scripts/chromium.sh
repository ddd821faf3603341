#!/usr/bin/env bash
# Prints the path of a Chromium binary on stdout, installing Debian's
# `chromium` package when none is on PATH. Logs go to stderr, so callers can
# write: TOLLGATE_CHROMIUM="$(scripts/chromium.sh)".
set -euo pipefail

log() { echo "chromium.sh: $*" >&2; }

find_browser() {
	local b
	for b in chromium chromium-browser google-chrome google-chrome-stable; do
		if command -v "$b" >/dev/null 2>&1; then
			command -v "$b"
			return 0
		fi
	done
	return 1
}

if path=$(find_browser); then
	echo "$path"
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	log "no Chromium on PATH and no apt-get to install one; install chromium and retry"
	exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo=(sudo -n)
	else
		log "not root and no sudo: install Debian's chromium package and retry"
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {
	"${sudo[@]}" apt-get install -y -q --no-install-recommends chromium >&2
}

log "installing Debian's chromium package"
if ! apt_install; then
	log "install failed; running apt-get update and retrying"
	"${sudo[@]}" apt-get update -q >&2
	apt_install
fi

if path=$(find_browser); then
	log "installed $("$path" --version 2>/dev/null || echo "$path")"
	echo "$path"
	exit 0
fi
log "chromium was installed but no browser binary is on PATH"
exit 1
