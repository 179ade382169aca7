# Everyday commands; each is a thin alias over cargo xtask.

default:
    @just --list

# Build, make throwaway certificates, start a local node and open the shell.
run *args:
    cargo xtask run {{args}}

# Stop the nodes started by `just run`.
stop:
    cargo xtask stop

# Everything CI checks.
test:
    cargo xtask test

# Format and lint quickly.
check:
    cargo fmt --all
    cargo clippy --workspace --all-targets -- -D warnings

# Criterion micro-benchmarks (HLC, storage).
bench:
    cargo bench -p vergent-hlc -p vergent-storage
