#!/usr/bin/env bash
# Create benchmarks/.weaver-venv: a separate venv holding weaver-core 0.5.3 (the reference for
# benchmarks/bench_train.py) on the same CPU build of torch as heplearn's venv.
#
#     bash benchmarks/weaver_env.sh [VENV_DIR]
#
# torch is installed first and pinned by a constraint file, so weaver-core's dependencies can
# neither upgrade it nor pull a CUDA build.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-$here/.weaver-venv}"
torch_version="${TORCH_VERSION:-2.13.0}"
python3 -m venv "$venv"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==$torch_version" > "$constraints"
"$venv/bin/pip" install --quiet "torch==$torch_version"
PIP_CONSTRAINT="$constraints" "$venv/bin/pip" install --quiet -c "$constraints" "weaver-core==0.5.3"
"$venv/bin/python" -c "import torch, weaver.nn.model.ParticleTransformer, weaver.nn.model.ParticleNet; print('weaver venv ready: torch', torch.__version__)"
