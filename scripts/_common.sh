# Shared by the operator scripts in this directory: sourced first, as
#   . "$(dirname "$0")/_common.sh"
# ($0 is still the script), so each script runs strict, knows its $SCRIPT name for
# messages, and runs from the repository root (the paths below are repo-relative).
set -euo pipefail
SCRIPT=$(basename "$0")
cd "$(dirname "$0")/.."

# The mirror-rollout command: this checkout's venv, else the one on PATH.
mirror_rollout_bin() {
    if [ -x .venv/bin/mirror-rollout ]; then
        echo .venv/bin/mirror-rollout
    elif command -v mirror-rollout >/dev/null 2>&1; then
        command -v mirror-rollout
    else
        echo "$SCRIPT: mirror-rollout not found (no .venv/bin/mirror-rollout, none on PATH); create it: python3 -m venv .venv && .venv/bin/pip install -e ." >&2
        exit 2
    fi
}

# usage_error MESSAGE: one line on stderr, exit 2.
usage_error() {
    echo "$SCRIPT: $1 (see $SCRIPT --help)" >&2
    exit 2
}

# need_value OPTION ARGC: the option must be followed by a value.
need_value() {
    if [ "$2" -lt 2 ]; then
        usage_error "option $1 needs a value"
    fi
}

# The options of the scripts that run one deployment for an environment; a script
# handles its own options first and hands the rest here. Each sets env_name,
# timeout (default 900) and args (more run options) for run_for_environment.
env_name=""
timeout=900
args=()

# environment_option ARG...: take --env, --region or --timeout (setting CONSUMED to
# how many arguments that was), answer -h/--help, refuse any other option, and take
# a bare word as ENV (CONSUMED=1) unless ENV was given already.
environment_option() {
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --env) need_value "$1" $#; env_name=$2; CONSUMED=2 ;;
        --region) need_value "$1" $#; args+=(--param "region=$2"); CONSUMED=2 ;;
        --timeout) need_value "$1" $#; timeout=$2; CONSUMED=2 ;;
        -*) usage_error "unknown option $1" ;;
        *)
            [ -z "$env_name" ] || usage_error "unexpected argument $1"
            env_name=$1; CONSUMED=1 ;;
    esac
}

# run_for_environment DEPLOYMENT: run it for ENV (default staging) and exit with its outcome.
run_for_environment() {
    local mr
    mr=$(mirror_rollout_bin)
    exec "$mr" run "$1" --param "environment=${env_name:-staging}" \
        --timeout "$timeout" ${args[@]+"${args[@]}"}
}
