#!/usr/bin/env bash
# Verify point-in-time recovery on the three DynamoDB tables of an environment:
# runs the Prefect deployment pitr-verification/on-demand (read-only unless
# --enable) and exits with the run's outcome (0 all ENABLED, 1 otherwise, 2 usage).
. "$(dirname "$0")/_common.sh"

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

while [ $# -gt 0 ]; do
    case "$1" in
        --enable) args+=(--param enable=true); shift ;;
        *) environment_option "$@"; shift "$CONSUMED" ;;
    esac
done
run_for_environment pitr-verification/on-demand
