"""The application layer of minimal-rl: the ``minimal-rl`` console command and what it runs.

    minimal_rl_app.cli          the command (train, compare, eval, prepare-data)
    minimal_rl_app.main_job     RL runs on the TRL trainers of trl_ext (the CPU demo's default)
    minimal_rl_app.demo         the embedded demo: task, tiny model, cached warm-start, held-out evaluation
    minimal_rl_app.evaluation   average@k on JSONL benchmarks (transformers or vLLM)
    minimal_rl_app.sampling     batched generation and log-probs with any transformers causal LM
    minimal_rl_app.plots        figures

It sits on top of the adapters (trl_ext) and the core (minimal_rl); nothing below imports it.
"""
