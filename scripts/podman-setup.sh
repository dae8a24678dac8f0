#!/usr/bin/env bash
# Week 7: make this machine build and run the course's images with podman, offline.
#
#   sudo bash scripts/podman-setup.sh        (make podman-setup runs it)
#
# Idempotent; each step is skipped when it is already done:
#   1. installs podman, runc, debootstrap (Debian packages) when they are missing, with
#      catatonit (the pause process of `podman kube play`'s pods);
#   2. writes /etc/containers/containers.conf: runtime runc (crun fails on this cgroup
#      layout), cgroupfs, lowered default ulimits. An existing file that says something
#      else is never overwritten silently: the script stops and says what to do
#      (PODMAN_SETUP_FORCE=1 keeps a backup and writes the course's file);
#   3. builds the base image localhost/mlpipe-base:bookworm offline: no image registry is
#      reachable, so `debootstrap --variant=minbase` installs Debian bookworm (Python 3.11)
#      from the Debian mirror the machine's apt sources name, and `podman import` turns the
#      tree into an image. It plays the part of python:3.11.7-slim: `python` and `pip`
#      on PATH, and pip may install into the system Python, as in the official image.
#
# Settings (environment): BASE_IMAGE (the tag to build), DEBIAN_MIRROR (a mirror to use
# instead of the one apt names), PODMAN_SETUP_FORCE=1 (replace a different containers.conf),
# APT_ETC (where apt's configuration lies; /etc/apt), CONTAINERS_CONF (the file to write;
# podman reads that variable too).
#   bash scripts/podman-setup.sh --mirror   prints the mirror and keyring it would use (any user);
#   bash scripts/podman-setup.sh --config   does step 2 only.
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-localhost/mlpipe-base:bookworm}
SUITE=bookworm
CONF=${CONTAINERS_CONF:-/etc/containers/containers.conf}
APT_ETC=${APT_ETC:-/etc/apt}
MARKER="# Written by the MLOps course's scripts/podman-setup.sh"

say() { printf 'podman-setup: %s\n' "$*"; }
die() {
	printf 'podman-setup: %s\n' "$*" >&2
	exit 2
}

if [ -z "${1:-}" ]; then
	[ "$(id -u)" -eq 0 ] || die "run me as root (sudo bash $0): podman here runs containers as root."
fi

# --- 1. packages -------------------------------------------------------------------------
install_packages() {
	local missing=() cmd pkg
	for pair in podman:podman runc:runc debootstrap:debootstrap iptables:iptables \
		catatonit:catatonit; do
		cmd=${pair%%:*} pkg=${pair#*:}
		command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
	done
	# debootstrap checks the mirror's signatures with Debian's archive keyring.
	[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
	if [ ${#missing[@]} -eq 0 ]; then
		say "packages: podman, runc, debootstrap, catatonit are installed."
		return
	fi
	say "packages: installing ${missing[*]} ..."
	export DEBIAN_FRONTEND=noninteractive
	# --no-install-recommends: no crun, which fails on this cgroup layout.
	apt-get install -y --no-install-recommends "${missing[@]}" ||
		{ apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; } ||
		die "apt-get could not install ${missing[*]}; see its messages above."
}

# --- 2. containers.conf ------------------------------------------------------------------
conf_text() {
	cat <<EOF
$MARKER.
# runc, not crun: crun fails on this machine's cgroup layout; cgroupfs: no systemd here.
# The default ulimits are lowered: the host's limits are higher than a container may get.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
EOF
}

write_conf() {
	local tmp
	mkdir -p "$(dirname "$CONF")"
	tmp=$(mktemp "$CONF.XXXXXX")
	conf_text >"$tmp"
	chmod 644 "$tmp"
	mv -f "$tmp" "$CONF"
}

# The setting `key` has `value` in the file (quoted values, any spacing).
has_setting() { grep -Eq "^[[:space:]]*$2[[:space:]]*=[[:space:]]*$3[[:space:]]*(#.*)?$" "$1"; }

configure() {
	if [ ! -e "$CONF" ]; then
		write_conf
		say "wrote $CONF (runtime runc, cgroupfs, lowered ulimits)."
	elif cmp -s "$CONF" <(conf_text); then
		say "$CONF is already the course's."
	elif head -n1 "$CONF" | grep -qF "$MARKER"; then
		write_conf
		say "updated $CONF (an older version of the course's)."
	elif has_setting "$CONF" runtime '"runc"' && has_setting "$CONF" cgroup_manager '"cgroupfs"' &&
		grep -q "nofile=" "$CONF"; then
		say "$CONF is not the course's but sets runc, cgroupfs and ulimits: kept as it is."
	elif [ "${PODMAN_SETUP_FORCE:-}" = 1 ]; then
		local backup
		backup="$CONF.bak.$(date +%Y%m%d%H%M%S)"
		cp -p "$CONF" "$backup"
		write_conf
		say "replaced $CONF (your old file is $backup)."
	else
		die "$CONF exists and does not set runtime = \"runc\", cgroup_manager = \"cgroupfs\" and default_ulimits; add them yourself or rerun with PODMAN_SETUP_FORCE=1 to replace it (a backup is kept)."
	fi
}

# --- 3. the base image -------------------------------------------------------------------
# Print "URI KEYRING" of the first Debian source of the apt configuration whose suites
# include bookworm (or, failing that, the host's own release): one-line .list files and
# deb822 .sources files.
apt_source() {
	local codename files=()
	codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
	[ -f "$APT_ETC/sources.list" ] && files+=("$APT_ETC/sources.list")
	for f in "$APT_ETC"/sources.list.d/*.list "$APT_ETC"/sources.list.d/*.sources; do
		[ -f "$f" ] && files+=("$f")
	done
	[ ${#files[@]} -gt 0 ] || return 0
	# apt reads only *.list and *.sources (a renamed file such as x.list.disabled is off).
	awk -v want="$SUITE" -v host="$codename" '
		function consider(uri, suites, key,   n, i, s, parts) {
			if (uri == "" || uri !~ /^(https?|file):/) return
			n = split(suites, parts, /[[:space:]]+/)
			for (i = 1; i <= n; i++) {
				s = parts[i]
				if (s == want && best == "") best = uri " " key
				if (host != "" && s == host && fallback == "") fallback = uri " " key
			}
		}
		function flush() {
			if (types ~ /(^|[[:space:]])deb([[:space:]]|$)/ && tolower(enabled) != "no") {
				split(uris, u, /[[:space:]]+/)
				consider(u[1], suites, signed)
			}
			types = uris = suites = signed = enabled = ""
		}
		FNR == 1 { flush(); deb822 = (FILENAME ~ /\.sources$/) }
		deb822 && /^[[:space:]]*$/ { flush(); next }
		/^[[:space:]]*#/ { next }
		deb822 {
			if (match($0, /^[A-Za-z-]+:/)) {
				field = tolower(substr($0, 1, RLENGTH - 1))
				value = substr($0, RLENGTH + 1)
				gsub(/^[[:space:]]+|[[:space:]]+$/, "", value)
				if (field == "types") types = value
				else if (field == "uris") uris = value
				else if (field == "suites") suites = value
				else if (field == "signed-by") signed = value
				else if (field == "enabled") enabled = value
			}
			next
		}
		$1 == "deb" {
			i = 2; key = ""
			if ($2 ~ /^\[/) {
				for (; i <= NF; i++) {
					if ($i ~ /signed-by=/) { key = $i; sub(/.*signed-by=/, "", key); sub(/\].*/, "", key) }
					if ($i ~ /\]$/) { i++; break }
				}
			}
			consider($i, $(i + 1), key)
		}
		END { flush(); if (best != "") print best; else if (fallback != "") print fallback }
	' "${files[@]}"
}

build_base() {
	if podman image exists "$BASE_IMAGE"; then
		say "base image $BASE_IMAGE exists."
		return
	fi
	local source mirror keyring root started
	source=$(apt_source)
	mirror=${DEBIAN_MIRROR:-${source%% *}}
	[ -n "$mirror" ] || die "no Debian mirror in $APT_ETC/sources.list or $APT_ETC/sources.list.d/ names the suite $SUITE; set DEBIAN_MIRROR=<a Debian mirror URL>."
	keyring=${source#* }
	[ "$keyring" != "$source" ] && [ -f "$keyring" ] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	root=$(mktemp -d /var/tmp/mlpipe-base.XXXXXX)
	# shellcheck disable=SC2064  # expand $root now
	trap "rm -rf '$root'" EXIT
	started=$(date +%s)
	say "debootstrap $SUITE (minbase, python3) from $mirror ..."
	# python3-venv: the serving image's build stage makes a venv; python-is-python3: `python`.
	debootstrap --variant=minbase --keyring="$keyring" \
		--include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
		"$SUITE" "$root" "$mirror" >"$root.log" 2>&1 ||
		{
			tail -n 20 "$root.log" >&2
			rm -f "$root.log"
			die "debootstrap could not install $SUITE from $mirror (its log's end is above)."
		}
	rm -f "$root.log"
	local version
	version=$(chroot "$root" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
	[ "$version" = 3.11 ] || die "the base image's python3 is $version, not 3.11."
	# As in python:3.11-slim, pip may install into the system Python (PEP 668's marker off),
	# and nothing of apt's caches or the documentation stays in the image.
	rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
	# make images mounts the machine's pip settings over this file during a build (a mount
	# over a file that exists leaves nothing behind in the image).
	echo "# pip's settings; empty in the image." >"$root/etc/pip.conf"
	chroot "$root" apt-get clean
	# (Programs' translations too: 33 MB; locale.alias stays.)
	rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
		"$root"/usr/share/info/* "$root"/var/log/*.log "$root"/var/cache/debconf/*-old \
		"$root"/usr/share/locale/*/
	tar -C "$root" --numeric-owner -c . |
		podman import \
			--change 'ENV LANG=C.UTF-8' \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'CMD ["python3"]' \
			--message "Debian $SUITE minbase with Python $version (scripts/podman-setup.sh)" \
			- "$BASE_IMAGE" >/dev/null
	say "built $BASE_IMAGE (Python $version) in $(($(date +%s) - started)) s: $(podman image inspect --format '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')."
}

case ${1:-} in
--mirror)
	source=$(apt_source)
	[ -n "$source" ] || die "no Debian mirror in $APT_ETC/sources.list or $APT_ETC/sources.list.d/ names the suite $SUITE."
	echo "$source"
	exit 0
	;;
--config)
	configure
	exit 0
	;;
"") ;;
*) die "unknown option $1 (--mirror, --config or none)." ;;
esac
install_packages
configure
podman info --format '{{.Host.OCIRuntime.Name}}' >/dev/null 2>&1 ||
	die "podman is installed but does not start; run 'podman info' to see why."
build_base
