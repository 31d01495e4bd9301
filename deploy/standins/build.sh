#!/usr/bin/env bash
# Builds the stand-in images (see README.md) with ../shared/tools/container when it is
# there, else with podman or docker.
set -euo pipefail
cd "$(dirname "$0")"
if [ -x ../../../shared/tools/container ]; then
  build() { ../../../shared/tools/container build "$@"; }
elif command -v podman >/dev/null; then
  build() { podman build -t "$1" "$2"; }
else
  build() { docker build -t "$1" "$2"; }
fi
build docker.io/library/postgres:15-bookworm postgres
build docker.io/library/redis:7-bookworm redis
build docker.io/library/nginx:1.27-bookworm nginx
