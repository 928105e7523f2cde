#!/usr/bin/env bash
# Test a nonce rotation against an environment's SSM: runs the Prefect deployment
# nonce-rotation-test/on-demand (rotate; during the grace period both versions
# readable and the newest one used; then roll back) and exits with its outcome.
. "$(dirname "$0")/_common.sh"

usage() {
    cat <<USAGE
usage: $SCRIPT [ENV | --env ENV] [--end rollback|cleanup|keep] [--grace-seconds S]
       [--region REGION] [--timeout SECONDS]

Runs a real rotation vN -> v(N+1) and checks, during the grace period, that both
versions are live and hold distinct real nonces and that the Oracle's reference
client redacts with v(N+1). Then, by --end:
  rollback (default)  undo the rotation: vN stays the nonce
  cleanup             end the grace early: v(N+1) stays the nonce
  keep                leave the rotation in grace for its scheduled cleanup
and checks the version left. Results in the ENV-nonce-rotation-test artifact.

  ENV, --env ENV            staging (default) or production
  --end E                   rollback, cleanup or keep (see above)
  --grace-seconds S         grace period of the test rotation (default 3600)
  --region R                AWS region (default us-east-1)
  --timeout S               cancel the run and exit 1 if it has not ended after S seconds (default 900)
  -h, --help                this help

Exit: 0 the run Completed (all checks passed); 1 it Failed, Crashed, was Cancelled or timed out; 2 usage error.
USAGE
}

while [ $# -gt 0 ]; do
    case "$1" in
        --end)
            need_value "$1" $#
            case "$2" in
                rollback | cleanup | keep) args+=(--param "end=$2") ;;
                *) usage_error "--end must be rollback, cleanup or keep, got $2" ;;
            esac
            shift 2 ;;
        --grace-seconds) need_value "$1" $#; args+=(--param "grace_seconds=$2"); shift 2 ;;
        *) environment_option "$@"; shift "$CONSUMED" ;;
    esac
done
run_for_environment nonce-rotation-test/on-demand
