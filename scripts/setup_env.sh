#!/usr/bin/env bash
# Create/reuse .venv and install the given requirements file when it changed since the last install;
# as root with apt, also Debian's dataset-fashion-mnist (the full 60k + 10k Fashion-MNIST, read offline).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's dataset-fashion-mnist (the full Fashion-MNIST, offline)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; } \
    || echo "could not install dataset-fashion-mnist: data.name=fashion_mnist will explain what to do" >&2
fi
req="${1:-requirements.txt}"
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null 2>&1 || py=python3
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $py" >&2
  "$py" -m venv .venv
fi
stamp=".venv/.installed-$(basename "$req")"
hash=$(cat requirements*.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
  echo "installing $req into .venv (first time: several minutes, torch is large)" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$req"
  echo "$hash" > "$stamp"
fi
