# Shared by scripts/serve and scripts/test: create ./.venv and install both distributions into
# it (the gateway, and the client with the `cortex` command), again only when a pyproject.toml
# changes.
ensure_venv() {
    local extras="$1"
    local stamp=".venv/.installed${extras}"
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
        .venv/bin/python -m pip install --quiet --upgrade pip
    fi
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] \
        || [ clients/python/pyproject.toml -nt "$stamp" ]; then
        .venv/bin/python -m pip install --quiet --editable ".${extras}" --editable ./clients/python
        touch "$stamp"
    fi
}
