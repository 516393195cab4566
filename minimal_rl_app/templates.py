"""Prompt templates: how a problem becomes chat messages, and which one a trained model was trained with.

``paper``: the paper's system prompt and instruction suffix (`minimal_rl.prompts.build_messages`);
``plain``: the bare problem as one user turn (the embedded demo model: the paper's instruction would cost
~150 character tokens per prompt for a model that cannot read it).
``train`` records its template next to the model it saves (``minimal-rl.json``); ``eval`` reads it there
unless ``--prompt-template`` says otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from minimal_rl.prompts import build_messages

RECORD = "minimal-rl.json"


def plain_messages(problem: str) -> list[dict[str, str]]:
    """The bare problem as one user turn."""
    return [{"role": "user", "content": problem}]


TEMPLATES: dict[str, Callable[[str], list[dict[str, str]]]] = {"paper": build_messages, "plain": plain_messages}


def messages_for(template: str) -> Callable[[str], list[dict[str, str]]]:
    return TEMPLATES[template]


def record_template(model_dir: Path, template: str) -> Path:
    """Write ``{"prompt_template": ...}`` next to a saved model."""
    path = Path(model_dir) / RECORD
    path.write_text(json.dumps({"prompt_template": template}) + "\n")
    return path


def recorded_template(model: str) -> str | None:
    """The template recorded with a local model folder, or None (hub ids, older runs, unreadable files)."""
    try:
        value = json.loads((Path(model).expanduser() / RECORD).read_text()).get("prompt_template")
    except (OSError, ValueError, AttributeError):
        return None
    return value if value in TEMPLATES else None
