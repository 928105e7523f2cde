# Shared by the operator scripts in this directory (sourced, not run).
# Each script has already done `cd "$(dirname "$0")/.."`, so paths are repo-relative.

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
