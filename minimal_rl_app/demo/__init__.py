"""The embedded CPU demo: a procedural arithmetic task, a tiny offline Llama and its cached warm-start."""
