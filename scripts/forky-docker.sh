#!/usr/bin/env bash
# The docker CLI of the forky chroot (with buildx, so `docker build` uses
# BuildKit), run in the caller's working directory; for tests and benches
# against the forky engines (DELTASYNC_DOCKER_CLI=scripts/forky-docker.sh).
exec "$(dirname "$0")/forky-root.sh" run docker "$@"
