"""vLLM's CPU backend with weights that can be updated after loading (test support only).

The limitation: after loading a model, vLLM 0.27's CPU backend (``dispatch_cpu_unquantized_gemm`` in
``vllm/model_executor/layers/utils.py``) packs every linear layer's weight into a oneDNN matmul handle
and replaces ``layer.weight`` with an empty Parameter; the embedding / tied LM head keeps its weight but
computes logits through a handle packed from the *initial* values. So a weight update from a trainer
(verl's ``update_weights_from_ipc``, TRL's ``load_weights``) fails (``'Parameter' object has no attribute
'weight_loader'``), and an update that did reach the tensors would not change what vLLM generates.

The workaround: report oneDNN as unavailable (``vllm._custom_ops._supports_onednn = False``) before the
model loads, so vLLM takes its own fallback path (``torch.nn.functional.linear`` on ``layer.weight``,
the path it uses on CPUs without oneDNN), where weights stay in place and updates take effect.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def keep_weights_reloadable() -> None:
    """Apply the workaround in this process (call before vLLM loads a model)."""
    from vllm import _custom_ops

    if getattr(_custom_ops, "_supports_onednn", False):
        _custom_ops._supports_onednn = False
        logger.info("minimal_rl_e2e: vLLM CPU oneDNN weight packing off (weights stay updatable)")
