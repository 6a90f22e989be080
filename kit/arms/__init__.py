"""Arms: the ways of answering a task. See :mod:`kit.arms.base` for the contract."""

from kit.arms.base import Arm, Backend, Completion, Request, backend_of, get_arm, register_arm, registered_backends

# Each module registers its backend(s) on import; heavy libraries are imported inside factories.
BUILTIN_MODULES: tuple[str, ...] = (
    "kit.arms.llama_cpp", "kit.arms.lora", "kit.arms.openai_compat", "kit.arms.anthropic_arm", "kit.arms.replay",
)

__all__ = ["Arm", "Backend", "Completion", "Request", "backend_of", "get_arm", "register_arm", "registered_backends", "BUILTIN_MODULES"]
