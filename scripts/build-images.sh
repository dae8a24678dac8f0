#!/usr/bin/env bash
# Week 7: build the week 1 and week 5 images with podman (make images runs it, after
# make podman-setup has built the offline base image):
#   localhost/mlpipe-train:$IMAGE_VERSION  from solutions/docker/train.Dockerfile
#   localhost/mlpipe-serve:$IMAGE_VERSION  from solutions/docker/serve.Dockerfile
# and print each one's size and build time.
#
#   bash scripts/build-images.sh [PYTHON]      (PYTHON: whose pip settings to use)
#
# pip inside the build sees this machine's pip settings, never hard-coded ones:
# * the CA bundle pip trusts (PIP_CERT, or `cert` in pip's configuration), needed where a
#   TLS-intercepting proxy stands between the machine and PyPI. It is mounted, read-only,
#   over the image's own bundle for the build's RUN steps only: nothing of it stays in the
#   image or its history. IMAGE_CA=/path picks another bundle, IMAGE_CA=none turns it off
#   (off too when pip names no bundle);
# * http(s) package indexes (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST or the
#   same keys of pip's configuration), in a pip.conf mounted over the base image's empty
#   /etc/pip.conf during the build. Local ones (file://, find-links folders) cannot be
#   reached from inside a build and are left out, with a line that says so.
#
# Settings (environment): IMAGE_VERSION (0.1.0), BASE_IMAGE (the local base;
# python:3.11.7-slim where Docker Hub is reachable), PIPELINE_DIR (solutions: the reference;
# labs: your own code), IMAGE_CA, IMAGES (which to build: "train serve").
set -euo pipefail

PYTHON=${1:-python3}
VERSION=${IMAGE_VERSION:-0.1.0}
BASE_IMAGE=${BASE_IMAGE:-localhost/mlpipe-base:bookworm}
PIPELINE_DIR=${PIPELINE_DIR:-solutions}
IMAGE_CA=${IMAGE_CA:-auto}
IMAGES=${IMAGES:-train serve}

say() { printf 'images: %s\n' "$*"; }
die() {
	printf 'images: %s\n' "$*" >&2
	exit 2
}

cd "$(dirname "$0")/.."
command -v podman >/dev/null 2>&1 || die "podman is not installed: run make podman-setup first."
[ -d "$PIPELINE_DIR/mlpipe" ] || die "PIPELINE_DIR=$PIPELINE_DIR has no mlpipe package (solutions or labs)."
if [[ $BASE_IMAGE == localhost/* ]] && ! podman image exists "$BASE_IMAGE"; then
	die "the base image $BASE_IMAGE does not exist yet: run make podman-setup first."
fi

# One setting of pip: the environment first, then pip's configuration (install, global).
pip_setting() {
	local key=$1 env=$2 value
	value=${!env:-}
	if [ -z "$value" ]; then
		value=$("$PYTHON" -m pip config list 2>/dev/null |
			awk -F= -v k="$key" '
				{ name = $1; sub(/^[^.]*\./, "", name); section = $1; sub(/\..*/, "", section) }
				name == k { v = substr($0, length($1) + 2); gsub(/^'\''|'\''$/, "", v); got[section] = v }
				END { if (":env:" in got) print got[":env:"]; else if ("install" in got) print got["install"]; else if ("global" in got) print got["global"] }')
	fi
	printf '%s' "$value"
}

# Keep the http(s) URLs of a list; say which local ones are left out.
remote_urls() {
	local kept=() url
	for url in $1; do
		case $url in
		http://* | https://*) kept+=("$url") ;;
		*) say "pip's index $url is local to this machine: the build cannot reach it, left out." >&2 ;;
		esac
	done
	printf '%s' "${kept[*]:-}"
}

mounts=()
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ca=$IMAGE_CA
[ "$ca" = auto ] && ca=$(pip_setting cert PIP_CERT)
[ "$ca" = none ] && ca=
if [ -n "$ca" ]; then
	[ -f "$ca" ] || die "the CA bundle $ca does not exist (IMAGE_CA=none builds without one)."
	# Debian's pip (the local base) trusts this file; cert= below covers other pips.
	mounts+=(-v "$(realpath "$ca"):/etc/ssl/certs/ca-certificates.crt:ro")
	say "pip in the build trusts the CA bundle $ca (mounted for the build only)."
fi
index=$(remote_urls "$(pip_setting index-url PIP_INDEX_URL)")
extra=$(remote_urls "$(pip_setting extra-index-url PIP_EXTRA_INDEX_URL)")
trusted=$(pip_setting trusted-host PIP_TRUSTED_HOST)
links=$(pip_setting find-links PIP_FIND_LINKS)
[ -z "$links" ] || say "pip's find-links $links lie on this machine: the build cannot see them, left out." >&2
if [ -n "$ca$index$extra$trusted" ]; then
	{
		echo "[global]"
		[ -n "$ca" ] && echo "cert = /etc/ssl/certs/ca-certificates.crt"
		[ -n "$index" ] && echo "index-url = $index"
		[ -n "$extra" ] && echo "extra-index-url = $extra"
		[ -n "$trusted" ] && echo "trusted-host = $trusted"
	} >"$work/pip.conf"
	chmod 644 "$work/pip.conf"
	mounts+=(-v "$work/pip.conf:/etc/pip.conf:ro")
	[ -n "$index$extra" ] && say "pip in the build uses the index(es) $index $extra."
fi

for name in $IMAGES; do
	tag=localhost/mlpipe-$name:$VERSION
	file=solutions/docker/$name.Dockerfile
	[ -f "$file" ] || die "there is no $file."
	say "building $tag from $file (base $BASE_IMAGE, PIPELINE_DIR=$PIPELINE_DIR) ..."
	started=$(date +%s)
	podman build --format docker --file "$file" --tag "$tag" \
		--build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg PIPELINE_DIR="$PIPELINE_DIR" \
		"${mounts[@]}" . >"$work/build.log" 2>&1 || {
		tail -n 30 "$work/build.log" >&2
		die "podman build of $tag failed (the end of its log is above)."
	}
	seconds=$(($(date +%s) - started))
	size=$(podman image inspect --format '{{.Size}}' "$tag")
	say "$tag: $(awk -v s="$size" 'BEGIN { printf "%.0f MB", s / 1e6 }') (built in $seconds s)"
done
