"""The paper's prompt template (Sec. 5.1; the released scripts' system prompt and suffix)."""

from __future__ import annotations

SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
PROMPT_SUFFIX = "Let's think step by step and output the final answer within \\boxed{}."


def user_message(problem: str) -> str:
    """The problem followed by the paper's instruction suffix."""
    return f"{problem.strip()} {PROMPT_SUFFIX}"


def build_messages(problem: str, system_prompt: str | None = SYSTEM_PROMPT) -> list[dict[str, str]]:
    """Chat messages for one problem, to go through the model's chat template."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": user_message(problem)})
    return messages
