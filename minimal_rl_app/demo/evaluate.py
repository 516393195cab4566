"""The demo model's prompt: the bare problem (`minimal_rl_app.templates.plain_messages`) through its chat
template. Held-out evaluation of any model lives in `minimal_rl_app.heldout`."""

from __future__ import annotations

from typing import Any

from minimal_rl_app.sampling import chat_prompt
from minimal_rl_app.templates import plain_messages as demo_messages

MAX_NEW_TOKENS = 16  # "\boxed{-123}" plus EOS fits comfortably

__all__ = ["MAX_NEW_TOKENS", "demo_messages", "demo_prompt"]


def demo_prompt(tokenizer: Any, problem: str) -> str:
    return chat_prompt(tokenizer, demo_messages(problem))
