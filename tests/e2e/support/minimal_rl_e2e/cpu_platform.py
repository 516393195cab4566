"""A CPU platform for verl 0.9.1, registered through verl's own plugin mechanisms (test support only).

Loaded in every verl process (driver, TaskRunner, Ray workers) by ``import verl`` through
``VERL_USE_EXTERNAL_MODULES=minimal_rl_e2e.cpu_platform`` and selected with ``VERL_PLATFORM=cpu``
(`harness.cpu_env` sets both). Each piece covers one limitation of stock verl 0.9.1 on a machine with no
accelerator:

1. verl registers only the ``nvidia``, ``npu`` and ``rocm`` platforms (``verl/plugin/platform``); with
   none available it falls back to ``nvidia`` and calls into ``torch.cuda``. `PlatformCPU` is registered
   with verl's ``PlatformRegistry`` under ``cpu``.
2. verl formats the device id both as a tensor target (``tensor.to(get_device_id())``) and into device
   strings (``f"{get_device_name()}:{get_device_id()}"``). `DeviceId` is the string ``"cpu"`` for torch and
   formats as ``0`` in an f-string, so both give ``cpu`` / ``cpu:0``.
3. verl calls ``torch.cuda``-only functions through its device module (``empty_cache``, ``mem_get_info``,
   ``get_rng_state``, ``ipc_collect``, memory statistics...); ``torch.cpu`` lacks them. `device_module`
   is ``torch.cpu`` plus CPU meanings of those (no-ops, host memory, the CPU generator).
4. verl builds the process-group backend as ``f"cpu:gloo,{device}:{backend}"``
   (``verl/utils/distributed.py``), i.e. ``"cpu:gloo,cpu:gloo"`` here, which torch rejects
   ("Duplicate device type cpu"). `_dedupe_backend` wraps ``torch.distributed.init_process_group`` and
   turns exactly that string into ``"gloo"``.
5. Ray placement: verl asks Ray for the platform's resource per worker. ``GPU`` is kept (with
   ``ray_kwargs.ray_init.num_gpus=1`` the driver declares one), so verl's placement groups and colocation
   logic run unchanged.

6. vLLM's CPU backend packs linear weights into oneDNN handles after loading, so verl's weight sync into
   the rollout fails and could not change generation anyway (`vllm_cpu`); in a process that runs vLLM
   (``vllm`` already imported when verl is, e.g. vLLM's worker loading verl's worker extension before
   the model) `install` switches that packing off.

7. verl builds its forward-only reference model with FSDP2's ``CPUOffloadPolicy(pin_memory=True)``
   (``verl/workers/engine/fsdp/transformer_impl.py``, not configurable for ``forward_only``), and pinning host
   memory needs an accelerator ("Cannot access accelerator device"). With no accelerator, pinned memory has no
   meaning: `_pin_memory_without_accelerator` makes ``Tensor.pin_memory`` return the tensor itself.

Not covered here (set by `harness.cpu_env` / `harness.CPU_OVERRIDES`, each with its reason): the FSDP
engine is registered for cuda/npu only (``VERL_ENGINE_DEVICE=cuda``), FSDP1 needs an accelerator
(``strategy=fsdp2``), no flash-attn (``attn_implementation=sdpa``), vLLM CPU settings.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Optional

import torch
import torch.distributed as dist
from verl.plugin.platform import platform_manager
from verl.plugin.platform.platform_base import PlatformBase
from verl.plugin.platform.platform_manager import PlatformRegistry

logger = logging.getLogger(__name__)

PLATFORM_NAME = "cpu"
DUPLICATE_CPU_BACKEND = "cpu:gloo,cpu:gloo"


class DeviceId(str):
    """Device id 0 on the CPU: ``"cpu"`` where torch takes it, ``"0"`` when formatted (workaround 2)."""

    def __new__(cls) -> "DeviceId":
        return super().__new__(cls, "cpu")

    def __format__(self, spec: str) -> str:
        return format(0, spec)

    def __int__(self) -> int:
        return 0


def _host_memory() -> tuple[int, int]:
    """(free, total) bytes of host memory, what ``torch.cuda.mem_get_info`` returns for a GPU."""
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        return info.get("MemAvailable", info["MemFree"]), info["MemTotal"]
    except (OSError, KeyError, ValueError, IndexError):
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return pages * size // 2, pages * size


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def _zero(*args: Any, **kwargs: Any) -> int:
    return 0


def _build_device_module() -> ModuleType:
    """``torch.cpu`` plus CPU meanings of the ``torch.cuda`` functions verl calls (workaround 3)."""
    module = ModuleType("minimal_rl_e2e_cpu_device")
    for name in dir(torch.cpu):
        if not name.startswith("_"):
            setattr(module, name, getattr(torch.cpu, name))
    extras = {
        "current_device": DeviceId,
        "device_count": lambda: 1,
        "is_available": lambda: True,
        "set_device": _nothing,
        "synchronize": _nothing,
        "empty_cache": _nothing,
        "ipc_collect": _nothing,
        "reset_peak_memory_stats": _nothing,
        "set_per_process_memory_fraction": _nothing,
        "memory_allocated": _zero,
        "memory_reserved": _zero,
        "max_memory_allocated": _zero,
        "max_memory_reserved": _zero,
        "mem_get_info": lambda *args, **kwargs: _host_memory(),
        "get_device_name": lambda *args, **kwargs: "cpu",
        "get_rng_state": lambda *args, **kwargs: torch.get_rng_state(),
        "set_rng_state": lambda state, *args, **kwargs: torch.set_rng_state(state),
        "manual_seed": torch.manual_seed,
        "manual_seed_all": torch.manual_seed,
    }
    for name, value in extras.items():
        setattr(module, name, value)
    return module


DEVICE_MODULE = _build_device_module()


@PlatformRegistry.register(platform=PLATFORM_NAME)
class PlatformCPU(PlatformBase):
    """verl platform for the host CPU (workaround 1)."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        return DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def current_device(self) -> DeviceId:
        return DeviceId()

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: Optional[int] = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[Optional[int], Optional[int]]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"  # what Ray sets for the "GPU" resource it hands out

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"  # workaround 5

    def ray_noset_envvars(self) -> list[str]:
        return ["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"]

    def is_ipc_supported(self) -> bool:
        return False  # verl then moves rollout weights through shared memory

    def cudart(self) -> Any:
        return None


_original_init_process_group = dist.init_process_group


def _dedupe_backend(*args: Any, **kwargs: Any):
    """``torch.distributed.init_process_group`` with ``"cpu:gloo,cpu:gloo"`` read as ``"gloo"`` (workaround 4)."""
    if args and args[0] == DUPLICATE_CPU_BACKEND:
        args = ("gloo", *args[1:])
    if kwargs.get("backend") == DUPLICATE_CPU_BACKEND:
        kwargs["backend"] = "gloo"
    return _original_init_process_group(*args, **kwargs)


def _pin_memory_without_accelerator(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """``Tensor.pin_memory`` on a machine with no accelerator: the tensor itself (workaround 7)."""
    return self


def install() -> None:
    if os.environ.get("VERL_PLATFORM", "").strip().lower() != PLATFORM_NAME:
        return
    if not torch.accelerator.is_available() and torch.Tensor.pin_memory is not _pin_memory_without_accelerator:
        torch.Tensor.pin_memory = _pin_memory_without_accelerator
    if getattr(dist.init_process_group, "__wrapped_by_minimal_rl_e2e__", False):
        return
    _dedupe_backend.__wrapped_by_minimal_rl_e2e__ = True  # type: ignore[attr-defined]
    dist.init_process_group = _dedupe_backend
    if "vllm" in sys.modules:
        from .vllm_cpu import keep_weights_reloadable

        keep_weights_reloadable()  # workaround 6
    current = platform_manager._current_platform
    if current is not None and current.device_name != "cpu":
        # resolved before this module was imported: replace it with verl's own setter
        platform_manager.set_platform(PlatformCPU())


install()
