# Shared settings of the paper-reproduction recipes (Xiong et al., arXiv 2504.11343, Sec. 5.1).
# Sourced by recipes/verl/<algorithm>.sh; not meant to be run on its own.
#
# Environment variables (all optional):
#   MODEL        qwen2.5-math-7b (default) | llama-3.2-3b-instruct | any HF name or local path
#   DATA_DIR     where `minimal-rl prepare-data` wrote its files (default: ./data)
#   MINI_BATCH   prompts per optimiser step: 512 (default, the paper) or 256 (the released scripts)
#   N_GPUS       GPUs per node (default 8);  NNODES  nodes (default 1)
#   ROLLOUT_TP   vLLM tensor parallel size (default 2 for the 7B model, 1 otherwise)
#   TOTAL_EPOCHS (default 1, as the released scripts);  TEST_FREQ (default 10);  SAVE_FREQ (default 20)
#   PROJECT      trainer.project_name (default minimal-rl);  EXPERIMENT  (default <algorithm>-<model>)
#   PYTHON       interpreter (default python3)
#   DRY_RUN=1    print the Hydra overrides, one per line, instead of training
# Extra arguments to a recipe are appended as Hydra overrides and win over everything here, e.g.
#   MODEL=llama-3.2-3b-instruct recipes/verl/reinforce_rej.sh trainer.logger='["console","wandb"]'

set -euo pipefail

MODEL="${MODEL:-qwen2.5-math-7b}"
case "${MODEL}" in
  qwen2.5-math-7b)
    MODEL_PATH="Qwen/Qwen2.5-Math-7B"
    # Qwen2.5-Math-7B has a 4096-token context: prompt 1024 + response 3072 fills it exactly.
    ROLLOUT_TP="${ROLLOUT_TP:-2}"
    ;;
  llama-3.2-3b-instruct)
    MODEL_PATH="meta-llama/Llama-3.2-3B-Instruct"
    ROLLOUT_TP="${ROLLOUT_TP:-1}"
    ;;
  *)
    MODEL_PATH="${MODEL}"
    ROLLOUT_TP="${ROLLOUT_TP:-1}"
    ;;
esac
MODEL_TAG="$(basename "${MODEL_PATH}" | tr '[:upper:]' '[:lower:]')"

DATA_DIR="${DATA_DIR:-data}"
# Absolute, so verl's workers find the files whatever their working directory.
[[ "${DATA_DIR}" == /* ]] || DATA_DIR="${PWD}/${DATA_DIR}"
MINI_BATCH="${MINI_BATCH:-512}"
N_GPUS="${N_GPUS:-8}"
NNODES="${NNODES:-1}"
TOTAL_EPOCHS="${TOTAL_EPOCHS:-1}"
TEST_FREQ="${TEST_FREQ:-10}"
SAVE_FREQ="${SAVE_FREQ:-20}"
PROJECT="${PROJECT:-minimal-rl}"

# The paper's hyper-parameters, shared by every algorithm (RAFT, RAFT++, Reinforce(-Rej), GRPO, PPO).
# Algorithm-specific settings come from the `+minimal_rl=<preset>` config group or the recipe itself.
paper_overrides() {
  local algorithm="$1"
  PAPER_OVERRIDES=(
    # Data: Numina-Math prompts; validation on the three benchmarks of Table 1.
    "data.train_files=${DATA_DIR}/numina_math/train.parquet"
    "data.val_files=[${DATA_DIR}/math500/test.parquet,${DATA_DIR}/minerva_math/test.parquet,${DATA_DIR}/olympiadbench/test.parquet]"
    "data.train_batch_size=1024"
    "data.max_prompt_length=1024"
    "data.max_response_length=3072"
    "data.filter_overlong_prompts=true"
    "data.filter_overlong_prompts_workers=8"  # verl tokenizes every prompt once at start-up (~860k here)
    "data.truncation=error"
    # Policy and optimiser: AdamW, constant lr 1e-6.
    "actor_rollout_ref.model.path=${MODEL_PATH}"
    "actor_rollout_ref.model.use_remove_padding=true"
    "actor_rollout_ref.model.enable_gradient_checkpointing=true"
    "actor_rollout_ref.actor.optim.lr=1e-6"
    "actor_rollout_ref.actor.optim.lr_scheduler_type=constant"
    "actor_rollout_ref.actor.optim.lr_warmup_steps_ratio=0.0"
    "actor_rollout_ref.actor.ppo_mini_batch_size=${MINI_BATCH}"
    "actor_rollout_ref.actor.ppo_epochs=1"
    "actor_rollout_ref.actor.use_dynamic_bsz=true"
    "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384"
    # KL to the initial policy as a loss term (k3), coefficient 0.001; no entropy bonus.
    "actor_rollout_ref.actor.use_kl_loss=true"
    "actor_rollout_ref.actor.kl_loss_coef=0.001"
    "actor_rollout_ref.actor.kl_loss_type=low_var_kl"
    "actor_rollout_ref.actor.entropy_coeff=0"
    "actor_rollout_ref.ref.fsdp_config.param_offload=true"
    # Rollout: n = 4 responses per prompt at temperature 1.0.
    "actor_rollout_ref.rollout.name=vllm"
    "actor_rollout_ref.rollout.n=4"
    "actor_rollout_ref.rollout.temperature=1.0"
    "actor_rollout_ref.rollout.tensor_model_parallel_size=${ROLLOUT_TP}"
    "actor_rollout_ref.rollout.gpu_memory_utilization=0.6"
    # Validation: average@16, i.e. 16 samples per problem at temperature 1.0.
    "actor_rollout_ref.rollout.val_kwargs.n=16"
    "actor_rollout_ref.rollout.val_kwargs.do_sample=true"
    "actor_rollout_ref.rollout.val_kwargs.temperature=1.0"
    "actor_rollout_ref.rollout.val_kwargs.top_p=1.0"
    # Reward: Math-Verify, +1 / -1 (the presets set the same; GRPO and PPO have no preset).
    "reward.custom_reward_function.path=pkg://minimal_rl.reward"
    "reward.custom_reward_function.name=compute_score_async"
    # Trainer.
    "trainer.project_name=${PROJECT}"
    "trainer.experiment_name=${EXPERIMENT:-${algorithm}-${MODEL_TAG}}"
    "trainer.n_gpus_per_node=${N_GPUS}"
    "trainer.nnodes=${NNODES}"
    "trainer.total_epochs=${TOTAL_EPOCHS}"
    "trainer.val_before_train=true"
    "trainer.test_freq=${TEST_FREQ}"
    "trainer.save_freq=${SAVE_FREQ}"
    "trainer.critic_warmup=0"
  )
}

# run_recipe <algorithm tag> <overrides...>: the recipe's overrides followed by the user's arguments.
# Later overrides of a key win in Hydra, so the order is: shared settings, the recipe's, the user's.
run_recipe() {
  local algorithm="$1"
  shift
  paper_overrides "${algorithm}"
  local overrides=("${PAPER_OVERRIDES[@]}" "$@")
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    printf '%s\n' "${overrides[@]}"
    return 0
  fi
  exec "${PYTHON:-python3}" -m verl.trainer.main_ppo "${overrides[@]}"
}
