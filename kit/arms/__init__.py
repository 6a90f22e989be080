"""Arms: the ways of answering a task. See :mod:`kit.arms.base` for the contract."""

from kit.arms.base import (BUILTIN_MODULES, Arm, Backend, Completion, Request, backend_of, get_arm, register_arm,
                           registered_backends)

__all__ = ["Arm", "Backend", "Completion", "Request", "backend_of", "get_arm", "register_arm", "registered_backends", "BUILTIN_MODULES"]
