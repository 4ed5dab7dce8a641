# Shared by scripts/serve and scripts/test: create ./.venv and install both distributions into
# it (the gateway, and the client with the `cortex` command), again only when a pyproject.toml
# changes.
ensure_venv() {
    local extras="$1"
    local stamp=".venv/.installed${extras}"
    local done="$stamp"
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
        .venv/bin/python -m pip install --quiet --upgrade pip
    fi
    # An install with extras (scripts/test's) serves one without them (scripts/serve's).
    if [ -z "$extras" ] && [ ! -f "$done" ]; then
        done=$(ls -t .venv/.installed* 2>/dev/null | head -n 1) || true
        done="${done:-$stamp}"
    fi
    if [ ! -f "$done" ] || [ pyproject.toml -nt "$done" ] \
        || [ clients/python/pyproject.toml -nt "$done" ]; then
        .venv/bin/python -m pip install --quiet --editable ".${extras}" --editable ./clients/python
        touch "$stamp"
    fi
}
