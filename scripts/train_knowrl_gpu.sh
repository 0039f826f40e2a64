#!/usr/bin/env bash
# The shared GPU launch: the model scripts set PRETRAIN and RUN_DIR and call this one.
# Layout (1 x 8 GPUs): 4 policy ranks (ZeRO-3), 2 reference ranks, 2 vLLM engines (TP 1).
# For 2 x 8 GPUs set ACTOR_NODES=2 REF_GPUS=4 ENGINES=4 and join the second node with
#   ray start --address <head-ip>:6379
set -euo pipefail
PRETRAIN=${PRETRAIN:?set PRETRAIN to an HF model folder or hub id}
RUN_DIR=${RUN_DIR:-./checkpoint/knowrl-gpu}
SEEDS=${SEEDS:-knowrl_prompts/seed_tasks.jsonl}
ACTOR_NODES=${ACTOR_NODES:-1}
ACTOR_GPUS=${ACTOR_GPUS:-4}
REF_GPUS=${REF_GPUS:-2}
ENGINES=${ENGINES:-2}
ITERATIONS=${ITERATIONS:-30}
# Against the collapse to one label (docs/training.md); the defaults are the published method.
# e.g. PSEUDO_LABEL=aligned GROUP_FILTER=nondegenerate CLASS_BALANCE=groups EARLY_STOP=1
PSEUDO_LABEL=${PSEUDO_LABEL:-majority}
GROUP_FILTER=${GROUP_FILTER:-band}
CLASS_BALANCE=${CLASS_BALANCE:-none}
INTENT_WEIGHT=${INTENT_WEIGHT:-0}
early_stop=()
if [ "${EARLY_STOP:-0}" = "1" ]; then early_stop=(--early_stop); fi
# LoRA instead of full fine-tuning (0: off), e.g. LORA_RANK=16 ACTOR_GPUS=2 (README, "GPU cluster")
LORA_RANK=${LORA_RANK:-0}
LORA_ALPHA=${LORA_ALPHA:-32}

python -m openrlhf.cli.train_knowrl \
  --pretrain "$PRETRAIN" \
  --seed_prompts "$SEEDS" \
  --save_path "$RUN_DIR/model" --ckpt_path "$RUN_DIR/ckpt" --log_dir "$RUN_DIR/logs" \
  --use_tensorboard "$RUN_DIR/tensorboard" \
  --actor_num_nodes "$ACTOR_NODES" --actor_num_gpus_per_node "$ACTOR_GPUS" \
  --ref_num_nodes 1 --ref_num_gpus_per_node "$REF_GPUS" \
  --vllm_num_engines "$ENGINES" --vllm_tensor_parallel_size 1 --vllm_gpu_memory_utilization 0.6 \
  --zero_stage 3 --bf16 --gradient_checkpointing --flash_attn \
  --advantage_estimator reinforce --kl_estimator k1 --init_kl_coef 1e-4 \
  --micro_train_batch_size 2 --train_batch_size 16 \
  --micro_rollout_batch_size 4 --rollout_batch_size 16 \
  --n_samples_per_prompt 8 --max_epochs 1 \
  --prompt_max_len 1024 --generate_max_len 1024 \
  --actor_learning_rate 5e-7 \
  --num_iterations "$ITERATIONS" --introspection_prompts 12 --tasks_per_introspection 5 \
  --min_group_reward 0.2 --max_group_reward 0.8 --pool_agreement_threshold 0.875 \
  --pseudo_label "$PSEUDO_LABEL" --group_filter "$GROUP_FILTER" --class_balance "$CLASS_BALANCE" \
  --intent_weight "$INTENT_WEIGHT" ${early_stop[@]+"${early_stop[@]}"} \
  --lora_rank "$LORA_RANK" --lora_alpha "$LORA_ALPHA" \
  --save_steps 5 "$@"
