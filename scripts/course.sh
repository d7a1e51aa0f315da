#!/usr/bin/env bash
# The README's first command: set up what the course needs on a fresh machine, then run it.
#   bash scripts/course.sh            # the short tour (about a quarter of an hour on 2 cores)
#   bash scripts/course.sh --full     # the settings that reach the quality targets (hours)
# Extra arguments go to `ferrograd course` (see `cargo run --release -- course --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "cargo is not on PATH: install Rust first (https://rustup.rs), then run this again." >&2
    exit 2
fi

# Fashion-MNIST comes from Debian's package. Install it where this machine can; otherwise say
# exactly what to run (the course still runs the parts that do not need it).
fashion=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
if [ ! -e "$fashion/train-images-idx3-ubyte.gz" ] && [ ! -e "$fashion/train-images-idx3-ubyte" ]; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
    elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
    else
        echo "Fashion-MNIST is missing. On Debian or Ubuntu: sudo apt-get install dataset-fashion-mnist" >&2
        echo "Elsewhere: download the four idx files and set FASHION_MNIST_DIR=DIR." >&2
    fi
fi

# The LFW faces are not packaged: the project's copy sits beside the repository.
faces=${FERROGRAD_FACES:-../shared/data/lfw}
if [ ! -d "$faces/George_W_Bush" ]; then
    echo "LFW faces not found in $faces: the face-swap part will be skipped." >&2
    echo "Get LFW (one folder per person) and set FERROGRAD_FACES=DIR to include it." >&2
fi

exec cargo run --release -- course "$@"
