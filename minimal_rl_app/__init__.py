"""The application layer of minimal-rl: the ``minimal-rl`` console command and what it runs.

    minimal_rl_app.cli          the command (train, compare, eval, prepare-data); commands/ only parse arguments
    minimal_rl_app.jobs         what train / compare / eval do: validate everything, then act
    minimal_rl_app.main_job     one run: settings, name, training on the TRL trainers of trl_ext, resume, evaluation
    minimal_rl_app.run_log      metrics.json, one line per rollout, checkpoint bookkeeping (a TrainerCallback)
    minimal_rl_app.sources      the embedded demo or --model with --dataset
    minimal_rl_app.inputs       checks of user input (JSONL, model folders, places to write)
    minimal_rl_app.outputs      the manifest of written files (what --overwrite may remove)
    minimal_rl_app.heldout      held-out accuracy, KL to the initial model and entropy during training
    minimal_rl_app.evaluation   average@k on JSONL benchmarks (transformers or vLLM)
    minimal_rl_app.comparison   compare's table, findings, seeds
    minimal_rl_app.templates    prompt templates, recorded with a trained model
    minimal_rl_app.demo         the embedded demo: task, tiny model, cached warm-start
    minimal_rl_app.sampling     batched generation and log-probs with any transformers causal LM
    minimal_rl_app.plots        figures

It sits on top of the adapters (trl_ext) and the core (minimal_rl); nothing below imports it.
"""
