#!/usr/bin/env bash
# Roll out staging: runs the Prefect deployment infra-rollout/staging-rollout, which
# pauses for one approval (Prefect UI or `mirror-rollout approve`), and exits with
# the run's outcome (0 Completed, 1 Failed/Crashed/Cancelled/timed out, 2 usage).
. "$(dirname "$0")/_common.sh"

usage() {
    cat <<USAGE
usage: $SCRIPT [--backend sandbox|aws] [--approval-timeout SECONDS] [--timeout SECONDS] [--no-wait]

Runs infra-rollout/staging-rollout on its work pool (register the deployments
first: prefect --no-prompt deploy --all). The run pauses after the plan: approve
it in the Prefect UI (the link is printed) or with
  mirror-rollout approve RUN_ID --key KEY_FILE [--reject]   (or --reviewer NAME, unsigned)

  --backend B               sandbox (the deployment's default) or aws
  --approval-timeout S      seconds the run waits for the approval (default 3600)
  --timeout S               cancel the run and exit 1 if it has not ended after S seconds
  --no-wait                 start the run, print its id and link, exit 0
  -h, --help                this help

Exit: 0 the run Completed; 1 it Failed, Crashed, was Cancelled or timed out; 2 usage error.
USAGE
}

args=()
while [ $# -gt 0 ]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --backend) need_value "$1" $#; args+=(--param "backend=$2"); shift 2 ;;
        --approval-timeout) need_value "$1" $#; args+=(--param "approval_timeout_seconds=$2"); shift 2 ;;
        --timeout) need_value "$1" $#; args+=(--timeout "$2"); shift 2 ;;
        --no-wait) args+=(--no-wait); shift ;;
        *) usage_error "unknown option $1" ;;
    esac
done

MR=$(mirror_rollout_bin)
exec "$MR" run infra-rollout/staging-rollout ${args[@]+"${args[@]}"}
