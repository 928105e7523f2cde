#!/usr/bin/env bash
# Verify point-in-time recovery on the three DynamoDB tables of an environment:
# runs the Prefect deployment pitr-verification/on-demand (read-only unless
# --enable) and exits with the run's outcome (0 all ENABLED, 1 otherwise, 2 usage).
set -euo pipefail
SCRIPT=$(basename "$0")
cd "$(dirname "$0")/.."
. scripts/_common.sh

usage() {
    cat <<USAGE
usage: $SCRIPT [ENV | --env ENV] [--region REGION] [--enable] [--timeout SECONDS]

Checks that fp-events, consent and block-counter of ENV (staging or production,
default staging) report PITR ENABLED with an EarliestRestorableDateTime. Runs the
deployment pitr-verification/on-demand; results in the ENV-pitr-verification artifact.

  ENV, --env ENV            staging (default) or production
  --region R                AWS region (default: the worker's AWS_REGION, else us-east-1)
  --enable                  switch PITR on where it is off, then verify (default: read only)
  --timeout S               cancel the run and exit 1 if it has not ended after S seconds (default 900)
  -h, --help                this help

Exit: 0 the run Completed (PITR verified); 1 it Failed, Crashed, was Cancelled or timed out; 2 usage error.
USAGE
}

env_name=""
timeout=900
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --env) need_value "$1" $#; env_name=$2; shift 2 ;;
        --region) need_value "$1" $#; args+=(--param "region=$2"); shift 2 ;;
        --enable) args+=(--param enable=true); shift ;;
        --timeout) need_value "$1" $#; timeout=$2; shift 2 ;;
        -*) usage_error "unknown option $1" ;;
        *)
            [ -z "$env_name" ] || usage_error "unexpected argument $1"
            env_name=$1; shift ;;
    esac
done

MR=$(mirror_rollout_bin)
exec "$MR" run pitr-verification/on-demand --param "environment=${env_name:-staging}" \
    --timeout "$timeout" ${args[@]+"${args[@]}"}
