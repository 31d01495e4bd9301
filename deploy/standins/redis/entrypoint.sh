#!/bin/sh
# As the official image does: redis-server without a configuration file takes connections
# from other containers (protected mode off).
set -eu
if [ "$1" = redis-server ]; then
  shift
  exec redis-server --protected-mode no "$@"
fi
exec "$@"
