#!/usr/bin/env bash
# Install moto's EC2-compatible server into a venv for the integration tests.
# Idempotent: does nothing when the pinned version is already installed.
set -euo pipefail

MOTO_VERSION="5.2.5"
VENV="${APPGRID_MOTO_VENV:-/var/tmp/appgrid-moto}"

installed_version() {
    "$VENV/bin/python" - <<'PY' 2>/dev/null || true
import importlib.metadata as m
try:
    print(m.version("moto"))
except m.PackageNotFoundError:
    pass
PY
}

if [[ -x "$VENV/bin/moto_server" && "$(installed_version)" == "$MOTO_VERSION" ]]; then
    echo "moto $MOTO_VERSION already installed in $VENV"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server,ec2]==$MOTO_VERSION"
echo "moto $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))') installed in $VENV"
