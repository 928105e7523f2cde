#!/usr/bin/env bash
# Roll out production behind its approval gate, then verify it:
#   1. infra-rollout/production-rollout: pauses twice, for two approvals by two
#      different reviewers (Prefect UI or `mirror-rollout approve`);
#   2. verify: pitr-verification/on-demand (read-only) and drift-detection/daily
#      (re-plan is a no-op, live settings match the baseline the rollout stored).
# Exit 0 only when the rollout and every verify run Completed; 1 otherwise; 2 usage.
. "$(dirname "$0")/_common.sh"

usage() {
    cat <<USAGE
usage: $SCRIPT [--backend aws|sandbox] [--region REGION] [--approval-timeout SECONDS]
       [--timeout SECONDS] [--skip-verify | --verify-only]

Runs infra-rollout/production-rollout on its work pool (register the deployments
first: prefect --no-prompt deploy --all). The run pauses after the plan for TWO
approvals signed by two different registered reviewers (deployments/reviewers.yaml);
approve each in the Prefect UI (the link is printed; paste the output of
`mirror-rollout sign RUN_ID --key KEY_FILE` into the signature field) or with
  mirror-rollout approve RUN_ID --key KEY_FILE [--reject]
When the rollout Completed, the verify step runs pitr-verification/on-demand and
drift-detection/daily for production.

  --backend B               aws (default) or sandbox
  --region R                AWS region of the PITR verification (default: the worker's)
  --approval-timeout S      seconds the run waits for each approval (default 3600)
  --timeout S               cancel a run and exit 1 if it has not ended after S seconds
                            (each run; default: no limit for the rollout, 900 for verify runs)
  --skip-verify             only the rollout
  --verify-only             only the verify step (re-verify a deployed production)
  -h, --help                this help

Exit: 0 the rollout and every verify run Completed; 1 one of them Failed, Crashed,
was Cancelled or timed out (the rollout's failure skips the verify step); 2 usage error.
USAGE
}

backend=aws
timeout=""
rollout=1
verify=1
rollout_args=()
pitr_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --backend)
            need_value "$1" $#
            case "$2" in
                aws | sandbox) backend=$2 ;;
                *) usage_error "--backend must be aws or sandbox, got $2" ;;
            esac
            shift 2 ;;
        --region) need_value "$1" $#; pitr_args+=(--param "region=$2"); shift 2 ;;
        --approval-timeout) need_value "$1" $#; rollout_args+=(--param "approval_timeout_seconds=$2"); shift 2 ;;
        --timeout) need_value "$1" $#; timeout=$2; shift 2 ;;
        --skip-verify) verify=0; shift ;;
        --verify-only) rollout=0; shift ;;
        *) usage_error "unknown option $1" ;;
    esac
done
if [ "$rollout" = 0 ] && [ "$verify" = 0 ]; then
    usage_error "--skip-verify and --verify-only exclude each other"
fi

MR=$(mirror_rollout_bin)

if [ "$rollout" = 1 ]; then
    echo "== 1/2 rollout: infra-rollout/production-rollout (two approvals)"
    "$MR" run infra-rollout/production-rollout --param environment=production \
        --param "backend=$backend" --timeout "${timeout:-0}" \
        ${rollout_args[@]+"${rollout_args[@]}"} || exit $?
fi

if [ "$verify" = 1 ]; then
    status=0
    echo "== 2/2 verify: pitr-verification/on-demand"
    "$MR" run pitr-verification/on-demand --param environment=production \
        --timeout "${timeout:-900}" ${pitr_args[@]+"${pitr_args[@]}"} || status=$?
    echo "== 2/2 verify: drift-detection/daily"
    "$MR" run drift-detection/daily --param environment=production \
        --param "backend=$backend" --timeout "${timeout:-900}" || { rc=$?; [ "$status" != 0 ] || status=$rc; }
    if [ "$status" != 0 ]; then
        echo "$SCRIPT: verify step failed (exit $status)" >&2
        exit "$status"
    fi
    echo "$SCRIPT: production verified"
fi
