#!/usr/bin/env bash
# The whole suite on SQLite (the embedded default, browser tests included), then
# every database-backed test again on a real PostgreSQL server started here.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTEST=".venv/bin/pytest"
what=${1:-all}

if [ "$what" = all ]; then
  echo "== test suite on SQLite =="
  $PYTEST -q
fi

echo "== database tests on PostgreSQL =="
pgdir=$(mktemp -d /tmp/tocsin-pg.XXXXXX)
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=$(bash scripts/pg-test-server.sh start "$pgdir" "$port")
trap 'bash scripts/pg-test-server.sh stop "$pgdir"' EXIT
TOCSIN_TEST_DATABASE_URL="$url" $PYTEST -q -m "not e2e" --ignore=tests/engines
