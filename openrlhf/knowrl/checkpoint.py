"""A run's folders on disk: saving and loading a checkpoint, which checkpoints are complete and
intact, rotation, the settings a resume must match, and the guard that keeps a fresh run out of
another run's folders.

A checkpoint is `--ckpt_path/iter_NNNN/`: the policy's DeepSpeed files, then `knowrl_state.json`
(loop state, the run's key settings and a manifest of every file with its size), written last
and only after the other files are fsynced. A folder without the state file is an interrupted
save; one whose files no longer match the manifest is damaged. Neither is resumed from.

Everything here runs in the controller process (or the CLI, before Ray starts); it reads the
files the policy ranks wrote, so it assumes --ckpt_path is one filesystem visible to the
controller (local disk on one node, or a shared filesystem on a cluster).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field

from openrlhf.utils.errors import EngineRestartsExhausted

STATE_FILE = "knowrl_state.json"
TAG_PATTERN = re.compile(r"^iter_(\d+)$")
# The settings a checkpoint can only be resumed under; a changed value makes DeepSpeed fail late
# (or, worse, load shards into the wrong places).
RESUME_SETTINGS = ("model", "actor_world_size", "zero_stage", "bf16")


def checkpoint_tag(iteration: int) -> str:
    return f"iter_{iteration:04d}"


def tag_iteration(tag: str) -> int | None:
    """The iteration of a tag folder name (`iter_0012` -> 12), None for other names."""
    match = TAG_PATTERN.match(tag)
    return int(match.group(1)) if match else None


def complete_checkpoints(ckpt_path: str) -> list[str]:
    """Tags whose save finished (the state file exists), oldest first by iteration number
    (not by name: iter_10000 comes after iter_9999)."""
    if not os.path.isdir(ckpt_path):
        return []
    tags = [t for t in os.listdir(ckpt_path)
            if tag_iteration(t) is not None and os.path.isfile(os.path.join(ckpt_path, t, STATE_FILE))]
    return sorted(tags, key=tag_iteration)


def any_checkpoints(ckpt_path: str) -> list[str]:
    """Every `iter_*` folder in ckpt_path, complete or not, oldest first."""
    if not os.path.isdir(ckpt_path):
        return []
    return sorted((t for t in os.listdir(ckpt_path) if tag_iteration(t) is not None
                   and os.path.isdir(os.path.join(ckpt_path, t))), key=tag_iteration)


def _fsync(path: str, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_manifest(folder: str) -> dict[str, int]:
    """Relative path -> size in bytes of every file under `folder` except the state file."""
    manifest = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if rel not in (STATE_FILE, STATE_FILE + ".tmp"):
                manifest[rel] = os.path.getsize(path)
    return manifest


def write_state(folder: str, state: dict) -> None:
    """Mark the checkpoint in `folder` complete: fsync every file the ranks wrote, then write
    the state (with the manifest of those files) through a temporary file, fsynced and renamed,
    so a crash at any point leaves either no state file or a whole one over durable files."""
    for root, dirs, files in os.walk(folder):
        for name in files:
            _fsync(os.path.join(root, name))
        for name in dirs:
            _fsync(os.path.join(root, name), directory=True)
    state = {**state, "files": file_manifest(folder)}
    staging = os.path.join(folder, STATE_FILE + ".tmp")
    with open(staging, "w") as f:
        json.dump(state, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(staging, os.path.join(folder, STATE_FILE))
    _fsync(folder, directory=True)


def read_state(folder: str) -> dict:
    """The state file of a checkpoint folder. Raises OSError or ValueError when unreadable."""
    with open(os.path.join(folder, STATE_FILE)) as f:
        state = json.load(f)
    if not isinstance(state, dict) or "iteration" not in state:
        raise ValueError("not a KnowRL loop state")
    return state


def checkpoint_problem(folder: str) -> str | None:
    """Why the checkpoint in `folder` cannot be resumed from (None: it can): an unreadable
    state file, a file of its manifest missing or of another size, or (for checkpoints saved
    before manifests existed) an empty file."""
    try:
        state = read_state(folder)
    except (OSError, ValueError) as exc:
        return f"its {STATE_FILE} is unreadable ({exc})"
    expected = state.get("files")
    if expected is None:   # saved before manifests: at least no empty or missing model file
        sizes = file_manifest(folder)
        if not sizes:
            return "it holds no model files"
        empty = sorted(p for p, n in sizes.items() if n == 0)
        return f"{empty[0]} is empty" if empty else None
    for rel, size in sorted(expected.items()):
        path = os.path.join(folder, rel)
        if not os.path.isfile(path):
            return f"{rel} is missing"
        if os.path.getsize(path) != size:
            return f"{rel} has {os.path.getsize(path)} bytes, {size} were saved"
    return None


@dataclass
class ResumePoint:
    """The checkpoint a resume will use, and the newer ones passed over (tag, why)."""

    tag: str | None
    state: dict | None
    skipped: list[tuple[str, str]] = field(default_factory=list)


def find_resume_point(ckpt_path: str) -> ResumePoint:
    """The newest complete and intact checkpoint in ckpt_path (tag None: there is none); damaged
    newer ones are listed in `skipped` so the caller can name them."""
    point = ResumePoint(None, None)
    for tag in reversed(complete_checkpoints(ckpt_path)):
        problem = checkpoint_problem(os.path.join(ckpt_path, tag))
        if problem is None:
            point.tag, point.state = tag, read_state(os.path.join(ckpt_path, tag))
            return point
        point.skipped.append((tag, problem))
    return point


def rotate_checkpoints(ckpt_path: str, keep: int, current: str) -> list[str]:
    """Delete the oldest complete checkpoints so that `keep` remain; the one just written
    (`current`) is never deleted, whatever the names around it. Returns the deleted tags."""
    older = [t for t in complete_checkpoints(ckpt_path) if t != current]
    doomed = older[:max(0, len(older) - (keep - 1))]
    for tag in doomed:
        shutil.rmtree(os.path.join(ckpt_path, tag), ignore_errors=True)
    return doomed


def resume_settings(cfg, model_path: str) -> dict:
    """The run's settings that a checkpoint must have been saved under to be resumed: the
    resolved model folder, the number of policy ranks, the ZeRO stage and the precision."""
    return {"model": os.path.abspath(model_path) if os.path.isdir(model_path) else model_path,
            "actor_world_size": cfg.actor_world_size, "zero_stage": cfg.zero_stage, "bf16": cfg.bf16}


def saved_settings(state: dict) -> dict:
    """A checkpoint's resume settings; for checkpoints written before they were recorded, what
    its saved configuration says (the model as given on the command line then)."""
    if "settings" in state:
        return state["settings"]
    config = state.get("config", {})
    settings = {}
    if "actor_num_nodes" in config and "actor_num_gpus_per_node" in config:
        settings["actor_world_size"] = config["actor_num_nodes"] * config["actor_num_gpus_per_node"]
    for key in ("zero_stage", "bf16"):
        if key in config:
            settings[key] = config[key]
    return settings


def settings_mismatch(saved: dict, current: dict) -> list[str]:
    """One phrase per setting that differs, naming both values (settings absent from an older
    checkpoint are not compared)."""
    flags = {"model": "model", "actor_world_size": "policy ranks (--actor_num_nodes x --actor_num_gpus_per_node)",
             "zero_stage": "--zero_stage", "bf16": "--bf16"}
    return [f"{flags[key]} {saved[key]!r} in the checkpoint, {current[key]!r} now"
            for key in RESUME_SETTINGS if key in saved and key in current and saved[key] != current[key]]


def resume_check(cfg, model_path: str) -> tuple[str | None, list[str]]:
    """For --load_checkpoint, before anything starts: (error, warnings). The error is one line
    when the newest usable checkpoint was saved under other settings; the warnings name damaged
    checkpoints that will be passed over for an older intact one."""
    point = find_resume_point(cfg.ckpt_path)
    warnings = [f"checkpoint {os.path.join(cfg.ckpt_path, tag)} is damaged ({why}): skipping it"
                for tag, why in point.skipped]
    if point.tag is None:
        if point.skipped:
            return (f"--load_checkpoint: every checkpoint in {cfg.ckpt_path} is damaged (newest: "
                    f"{point.skipped[0][0]}, {point.skipped[0][1]}): restore the files, or start fresh "
                    f"with --overwrite", warnings)
        return None, warnings
    if point.skipped:
        warnings.append(f"resuming from the previous intact checkpoint {point.tag} instead")
    diff = settings_mismatch(saved_settings(point.state), resume_settings(cfg, model_path))
    if diff:
        return (f"--load_checkpoint: {os.path.join(cfg.ckpt_path, point.tag)} was saved with another setup "
                f"({'; '.join(diff)}): rerun with the checkpoint's settings, or use another --ckpt_path", warnings)
    return None, warnings


# ---------------------------------------------------------------------- saving and resuming a run
def save_checkpoint(policy, cfg, model_path: str, iteration: int, train_seconds: float, parts: dict) -> str:
    """Save the end of `iteration` as `cfg.ckpt_path/iter_NNNN/` and return that folder.

    `policy` (a ModelGroup) writes its DeepSpeed state first; then the loop state (iteration,
    `train_seconds` of iterations so far, each of `parts` (name -> an object with JSON-typed
    `state_dict()`, e.g. the task pool) under its name, the resume settings and the config) is
    written, fsynced, as the state file that marks the save complete. Older complete checkpoints
    rotate out (--max_ckpt_num); this one never does."""
    tag = checkpoint_tag(iteration)
    folder = os.path.join(cfg.ckpt_path, tag)
    # A folder of this tag from before a resume (damaged, or passed over) must not lend its
    # old state file to a save that is then interrupted.
    shutil.rmtree(folder, ignore_errors=True)
    policy.call_all("save_checkpoint", cfg.ckpt_path, tag)
    write_state(folder, {"iteration": iteration, "train_seconds": train_seconds,
                         **{name: part.state_dict() for name, part in parts.items()},
                         "settings": resume_settings(cfg, model_path), "config": cfg.public_dict()})
    rotate_checkpoints(cfg.ckpt_path, cfg.max_ckpt_num, current=tag)
    print(f"[knowrl] checkpoint {folder}", flush=True)
    return folder


def load_checkpoint(policy, cfg, model_path: str, parts: dict) -> tuple[str, dict] | None:
    """--load_checkpoint: load the newest complete, intact checkpoint of `cfg.ckpt_path` into
    `policy` and into each of `parts` it holds a state for (`load_state_dict`; checkpoints from
    before a part existed lack it), and return (its folder, its loop state); None when there is
    none (a fresh start).
    Damaged newer checkpoints are named and passed over. Raises RuntimeError, before anything is
    loaded, when the checkpoint was saved under other settings (the CLI checks this before Ray
    too)."""
    point = find_resume_point(cfg.ckpt_path)
    for tag, why in point.skipped:
        print(f"[knowrl] warning: checkpoint {os.path.join(cfg.ckpt_path, tag)} is damaged ({why}): "
              f"skipping it", flush=True)
    if point.tag is None:
        print(f"[knowrl] --load_checkpoint: no complete checkpoint in {cfg.ckpt_path}, starting fresh", flush=True)
        return None
    diff = settings_mismatch(saved_settings(point.state), resume_settings(cfg, model_path))
    if diff:
        raise RuntimeError(f"--load_checkpoint: {point.tag} was saved with another setup ({'; '.join(diff)})")
    policy.call_all("load_checkpoint", cfg.ckpt_path, point.tag)
    for name, part in parts.items():
        if name in point.state:
            part.load_state_dict(point.state[name])
    return os.path.join(cfg.ckpt_path, point.tag), point.state


def resume_advice(iteration: int, reward_error: bool, ckpt_path: str) -> str:
    """How a run stopped before `iteration`'s update goes on, the end of iteration - 1 being
    checkpointed (nothing, for iteration 1). `reward_error`: the reward function failed (the user
    fixes it); otherwise the engines died past --max_engine_restarts."""
    if iteration == 1:
        return ("fix it and rerun (no iteration had completed, nothing to resume)" if reward_error else
                "no iteration had completed, so there is nothing to resume from")
    if reward_error:
        return (f"fix it, then rerun with --load_checkpoint to continue from iteration {iteration} "
                f"({checkpoint_tag(iteration - 1)} is saved in {ckpt_path})")
    return "the last complete iteration is checkpointed: resume with --load_checkpoint"


class RunCheckpoints:
    """A run's checkpoints as the loop uses them: save the end of an iteration, save the last
    complete one when an iteration fails before its update, resume.

    policy: the policy `ModelGroup`; parts: name -> each loop object whose state a checkpoint
    holds (`state_dict()` / `load_state_dict()`: the task pool, the consensus targets, ...)."""

    def __init__(self, cfg, model_path: str, policy, parts: dict):
        self.cfg, self.model_path, self.policy, self.parts = cfg, model_path, policy, parts
        self.last = 0   # the iteration of the newest checkpoint this run saved or resumed from

    def save(self, iteration: int, train_seconds: float) -> None:
        """Checkpoint the end of `iteration` (`save_checkpoint`); `train_seconds`: iteration time so far."""
        save_checkpoint(self.policy, self.cfg, self.model_path, iteration, train_seconds, self.parts)
        self.last = iteration

    def save_before_update(self, iteration: int, reward_error: bool, train_seconds: float) -> str:
        """A failure (of the reward function when `reward_error`, else of the engines) came before
        `iteration`'s update, so the policy and the parts still hold the end of iteration - 1:
        checkpoint that (unless saved already) and return how the user goes on (`resume_advice`)."""
        if iteration > 1 and self.last != iteration - 1:
            self.save(iteration - 1, train_seconds)
        return resume_advice(iteration, reward_error, self.cfg.ckpt_path)

    def resume(self, logger, engines) -> tuple[int, float]:
        """--load_checkpoint: restore the newest complete, intact checkpoint into the policy and
        the parts, drop what `logger` (a MetricsLogger) logged after it, sync `engines` (an
        EnginePool) to it. Returns (the iteration it ended, iteration seconds so far); (0, 0.0)
        when there is none, a fresh start. Raises RuntimeError when it was saved under other
        settings or the engines die past --max_engine_restarts."""
        loaded = load_checkpoint(self.policy, self.cfg, self.model_path, self.parts)
        if loaded is None:
            logger.drop_after(0)
            return 0, 0.0
        folder, state = loaded
        done, train_seconds = state["iteration"], float(state.get("train_seconds", 0.0))
        self.last = done
        logger.drop_after(done)
        try:
            engines.sync_weights(done + 1)
        except EngineRestartsExhausted as exc:
            raise RuntimeError(f"{exc}; {self.save_before_update(done + 1, False, train_seconds)}") from exc
        print(f"[knowrl] resumed from {folder} after iteration {done}", flush=True)
        return done, train_seconds


# ---------------------------------------------------------------------- a fresh run's folders
def previous_run_files(cfg) -> list[str]:
    """Files or folders of an earlier run that a fresh run would mix with or overwrite:
    checkpoints in --ckpt_path, metrics or per-iteration records in --log_dir, a model in
    --save_path."""
    found = [os.path.join(cfg.ckpt_path, t) for t in any_checkpoints(cfg.ckpt_path)[-1:]]
    for name in ("metrics.jsonl", "iterations"):
        if os.path.exists(os.path.join(cfg.log_dir, name)):
            found.append(os.path.join(cfg.log_dir, name))
    if os.path.isfile(os.path.join(cfg.save_path, "config.json")):
        found.append(cfg.save_path)
    return found


def fresh_run_problem(cfg) -> str | None:
    """One line when a run without --load_checkpoint would start in another run's folders
    (and --overwrite was not given), naming what is there and the three ways on."""
    if cfg.load_checkpoint or cfg.overwrite:
        return None
    found = previous_run_files(cfg)
    if not found:
        return None
    return (f"{found[0]} holds an earlier run's output: resume it with --load_checkpoint, choose other folders "
            f"(--ckpt_path, --log_dir, --save_path), or pass --overwrite to move the earlier run aside")


def aside_name(path: str, stamp: str) -> str:
    base = os.path.normpath(path)
    name = f"{base}.prev-{stamp}"
    n = 1
    while os.path.exists(name):
        n += 1
        name = f"{base}.prev-{stamp}-{n}"
    return name


def move_earlier_run_aside(cfg, stamp: str | None = None) -> list[tuple[str, str]]:
    """--overwrite: rename each of --ckpt_path, --log_dir and --save_path that holds an earlier
    run's output to `<path>.prev-<UTC time>`, so nothing is deleted. Folders nested inside one
    another (a log_dir inside the save_path, say) move with their parent. Returns (old, new)."""
    if not previous_run_files(cfg):
        return []
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    candidates = []
    for path in (cfg.ckpt_path, cfg.log_dir, cfg.save_path):
        path = os.path.normpath(os.path.abspath(path))
        if os.path.isdir(path) and os.listdir(path) and path not in candidates:
            candidates.append(path)
    outer = [p for p in candidates if not any(p != q and p.startswith(q + os.sep) for q in candidates)]
    here = os.path.abspath(os.getcwd())
    for path in outer:
        if here == path or here.startswith(path + os.sep) or path == os.path.expanduser("~"):
            raise ValueError(f"--overwrite would move {path} aside, and it holds the current folder or your home: "
                             f"give the run folders of their own (--ckpt_path, --log_dir, --save_path)")
    moved = []
    for path in outer:
        target = aside_name(path, stamp)
        os.rename(path, target)
        moved.append((path, target))
    return moved
