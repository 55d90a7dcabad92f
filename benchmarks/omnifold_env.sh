#!/usr/bin/env bash
# Create benchmarks/.omnifold-venv: a separate venv holding the PyPI `omnifold` package 0.1.36
# (ViniciusMikuni/omnifold, arXiv:2503.09720; the reference for benchmarks/bench_unfold.py) on the
# CPU build of TensorFlow.
#
#     bash benchmarks/omnifold_env.sh [VENV_DIR]
#
# omnifold asks for `tensorflow`, whose wheel pulls the CUDA libraries; tensorflow-cpu is the same
# package without them, so omnifold is installed without its dependencies, after them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-$here/.omnifold-venv}"
tensorflow_version="${TENSORFLOW_VERSION:-2.21.0}"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet "tensorflow-cpu==$tensorflow_version" matplotlib pyyaml setuptools
"$venv/bin/pip" install --quiet --no-deps "omnifold==0.1.36"
"$venv/bin/python" -c "import tensorflow as tf, omnifold; print('omnifold venv ready: tensorflow', tf.__version__)"
