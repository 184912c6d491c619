#!/usr/bin/env bash
# Idempotent set-up on Debian 12 as root: system packages, cargo-pgrx, a project-local libtorch,
# the extension built and installed into PostgreSQL 15, and a project-local cluster on 127.0.0.1.
# Each step is skipped when it is already done.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
say() { printf '\033[1m[stan setup]\033[0m %s\n' "$*"; }

# 1. System packages.
APT_PACKAGES=(postgresql-15 postgresql-server-dev-15 clang libclang-dev sudo pkg-config python3-venv)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian starts its own main cluster on 5432; we use our own, so leave theirs alone.

# 2. Rust toolchain (cannot be installed from the registries this project may use).
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install a Rust toolchain (rustc >= 1.85) with rustup first" >&2
  exit 1
fi

# 3. cargo-pgrx, pinned.
if [ "$(cargo pgrx --version 2>/dev/null | awk '{print $2}')" != "$PGRX_VERSION" ]; then
  say "installing cargo-pgrx $PGRX_VERSION (a few minutes)"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --quiet
fi
if ! grep -qs '^pg15' "$HOME/.pgrx/config.toml"; then
  say "registering PostgreSQL 15 with pgrx"
  cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
fi

# 4. libtorch from PyPI in a project-local venv. PyPI has no CPU-only Linux wheel: the CUDA wheel
#    plus the two CUDA runtime wheels libtorch_cpu.so needs at load time runs fine without a GPU.
if [ -z "$(torch_dir)" ] || [ ! -f "$(torch_dir)/lib/libtorch_cpu.so" ] || [ ! -f "$(torch_dir)/build-version" ]; then
  say "installing libtorch $TORCH_VERSION into .venv (about 1.3 GB)"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --no-warn-conflicts --no-deps "torch==$TORCH_VERSION"
  "$VENV/bin/python" -m pip install -q --no-warn-conflicts "cuda-toolkit[cudart,cupti]==$CUDA_TOOLKIT_VERSION"
  LIBTORCH=$(torch_dir)
  # `import torch` fails in this partial install, so torch-sys cannot ask Python; the
  # build-version file lets it check the version instead of silently skipping the check.
  sed -n "s/^__version__ = '\(.*\)'/\1/p" "$LIBTORCH/version.py" > "$LIBTORCH/build-version"
fi
export LIBTORCH
LIBTORCH=$(torch_dir)

# 5. Build and install the extension (incremental; quick when nothing changed).
say "building and installing the extension"
cargo pgrx install --release --pg-config "$PG_CONFIG" 2>&1 | grep -E "^(error|warning: unused)|Installing|Finished" || true
test -f "$("$PG_CONFIG" --pkglibdir)/stan.so" || { echo "extension build failed" >&2; cargo pgrx install --release --pg-config "$PG_CONFIG"; exit 1; }

# 6. A project-local cluster, owned by the postgres user (PostgreSQL refuses to run as root).
mkdir -p "$ROOT/.pg"
# The postgres user must be able to reach the project directory.
d="$ROOT"
while [ "$d" != "/" ]; do
  if ! sudo -u postgres test -x "$d"; then say "granting search (o+x) on $d so postgres can reach .pg"; chmod o+x "$d"; fi
  d=$(dirname "$d")
done
chown postgres: "$ROOT/.pg"
if [ ! -f "$STAN_PGDATA/PG_VERSION" ]; then
  say "creating the cluster in .pg/data"
  sudo -u postgres "$PG_BIN/initdb" -D "$STAN_PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
mkdir -p "$STAN_PGSOCK" && chown postgres: "$STAN_PGSOCK"
if ! sudo -u postgres "$PG_BIN/pg_ctl" -D "$STAN_PGDATA" status >/dev/null 2>&1; then
  say "starting PostgreSQL on 127.0.0.1:$STAN_PGPORT"
  sudo -u postgres "$PG_BIN/pg_ctl" -D "$STAN_PGDATA" -l "$ROOT/.pg/server.log" -w start \
    -o "-p $STAN_PGPORT -k $STAN_PGSOCK -c listen_addresses=127.0.0.1 -c max_connections=50" >/dev/null
else
  # A rebuilt stan.so is picked up by new sessions; nothing to restart.
  :
fi
say "ready: PostgreSQL 15 with stan on 127.0.0.1:$STAN_PGPORT"
