#!/usr/bin/env bash
# Rotate the redaction nonce of an environment: runs the Prefect deployment
# nonce-rotation/scheduled (v(N+1) beside vN for the grace period, cleanup of vN
# scheduled at its end) and exits with the run's outcome (0, 1, or 2 for usage).
. "$(dirname "$0")/_common.sh"

usage() {
    cat <<USAGE
usage: $SCRIPT [ENV [FROM_VERSION]] [--env ENV] [--from-version N] [--grace-seconds S]
       [--region REGION] [--rollback] [--timeout SECONDS]

Creates /guardian/ENV/redaction_nonce_v(N+1) next to vN; both stay valid for the
grace period, then the scheduled nonce-grace-cleanup run deletes vN. Refused
(exit 1, nothing changed) while another rotation is in its grace period, or when
FROM_VERSION is not the current version. The initial nonce (the old
\`rotate-nonce.sh ENV 0\`) is v1, created by the rollout's nonce bootstrap.

  ENV, --env ENV            staging (default) or production
  FROM_VERSION, --from-version N
                            the current version N (default: the current one)
  --grace-seconds S         grace period in seconds (default 3600)
  --region R                AWS region (default us-east-1)
  --rollback                undo the rotation still in grace: delete v(N+1), keep vN
  --timeout S               cancel the run and exit 1 if it has not ended after S seconds (default 900)
  -h, --help                this help

Exit: 0 the run Completed; 1 it Failed (e.g. refused), Crashed, was Cancelled or timed out; 2 usage error.
USAGE
}

from_version=""
while [ $# -gt 0 ]; do
    case "$1" in
        --from-version) need_value "$1" $#; from_version=$2; shift 2 ;;
        --grace-seconds) need_value "$1" $#; args+=(--param "grace_seconds=$2"); shift 2 ;;
        --rollback) args+=(--param rollback=true); shift ;;
        -*) environment_option "$@"; shift "$CONSUMED" ;;
        *)
            # The second bare word is FROM_VERSION (the old `rotate-nonce.sh ENV N`).
            if [ -n "$env_name" ] && [ -z "$from_version" ]; then
                from_version=$1; shift
            else
                environment_option "$@"; shift "$CONSUMED"
            fi ;;
    esac
done
if [ -n "$from_version" ]; then
    case "$from_version" in
        *[!0-9]*) usage_error "FROM_VERSION must be a number, got $from_version" ;;
    esac
    args+=(--param "from_version=$from_version")
fi
run_for_environment nonce-rotation/scheduled
