# Shared settings for the project's scripts; sourced, never run.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export STAN_ROOT="$ROOT"
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PG_BIN=$("$PG_CONFIG" --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
export PG_BIN
export STAN_PGPORT=${STAN_PGPORT:-28815}
export STAN_PGDATA="$ROOT/.pg/data"
export STAN_PGSOCK="$ROOT/.pg/sock"
VENV="$ROOT/.venv"
TORCH_VERSION=2.11.0
CUDA_TOOLKIT_VERSION=13.0.2
PGRX_VERSION=0.18.1
torch_dir() { ls -d "$VENV"/lib/python3*/site-packages/torch 2>/dev/null | head -n1; }
if [ -n "$(torch_dir)" ]; then
  export LIBTORCH
  LIBTORCH=$(torch_dir)
fi
export PATH="$HOME/.cargo/bin:$PATH"
# psql on the project cluster as the superuser, over TCP on 127.0.0.1.
stan_psql() { "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$STAN_PGPORT" -U postgres "$@"; }
