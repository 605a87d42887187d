#!/usr/bin/env bash
# The ctr CLI of the forky chroot (containerd 2.x), run in the caller's
# working directory; for tests against a containerd2 site
# (DELTASYNC_CTR_CLI=scripts/forky-ctr.sh).
exec "$(dirname "$0")/forky-root.sh" run ctr "$@"
