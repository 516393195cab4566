"""Inputs: one rule for every entry point (compute_score, compute_score_async, math_verify_reward, is_correct).

Whatever shape a framework passes, a completion becomes one string and a ground truth a list of accepted
answers (empty: none to check against). Nothing here raises on model output or data.
"""

from __future__ import annotations

import math
import re
from typing import Any

def completion_text(completion: Any) -> str:
    """The response text of one completion, whatever shape a framework passes.

    str as is; None -> ""; bytes decoded (UTF-8, invalid bytes replaced); a chat message list (TRL's
    conversational format) -> the last message's content; a message dict -> its content; content given
    as a list of parts -> their text joined; anything else -> ``str()``. Never raises.
    """
    try:
        if isinstance(completion, str):
            return completion
        if completion is None:
            return ""
        if isinstance(completion, (bytes, bytearray)):
            return bytes(completion).decode("utf-8", errors="replace")
        if isinstance(completion, dict):
            return completion_text(completion.get("content", ""))
        if isinstance(completion, (list, tuple)):
            if not completion:
                return ""
            if all(isinstance(part, dict) and "content" not in part for part in completion):
                return "".join(str(part.get("text", "")) for part in completion)  # content parts
            return completion_text(completion[-1])
        return str(completion)
    except Exception:  # a hostile __str__ or __getitem__
        return ""


def ground_truth_answers(ground_truth: Any) -> list[str]:
    """The accepted answers of a ground truth; an empty list means there is none to check against.

    str -> [str] (empty or blank: none); None and NaN -> none (never the strings "None" / "nan");
    list / tuple / set / numpy array -> the answers of every element, flattened (correct if any matches);
    numpy scalars -> their Python value; bytes decoded; other values (int, float, Fraction, ...) -> ``str()``.
    Never raises.
    """
    out: list[str] = []
    _collect_answers(ground_truth, out, depth=0)
    return out


def _collect_answers(value: Any, out: list[str], depth: int) -> None:
    try:
        if depth > 8 or value is None:
            return
        if isinstance(value, str):
            if value.strip():
                out.append(value)
            return
        if isinstance(value, (bytes, bytearray)):
            _collect_answers(bytes(value).decode("utf-8", errors="replace"), out, depth + 1)
            return
        if isinstance(value, float):  # parquet / pandas often turn integer answers into floats
            if not math.isnan(value):
                out.append(str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value))
            return
        if isinstance(value, bool):
            out.append(str(value))
            return
        if isinstance(value, int):
            out.append(_int_str(value))
            return
        if isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                _collect_answers(item, out, depth + 1)
            return
        tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, without importing numpy
        if callable(tolist) and type(value).__module__.startswith("numpy"):
            _collect_answers(tolist(), out, depth + 1)
            return
        text = str(value)
        if text.strip() and text.strip().lower() not in ("nan", "none", "<na>", "nat"):
            out.append(text)
    except Exception:
        return


def _int_str(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # more digits than sys.get_int_max_str_digits(): decimal.Decimal has no such limit
        import decimal

        return format(decimal.Decimal(value), "f")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text`` (nested braces respected), or None."""
    if not isinstance(text, str):
        return None
    starts = [m.end() for m in _BOXED.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            ch = text[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i].strip()
        # unbalanced: try an earlier box
    return None


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
