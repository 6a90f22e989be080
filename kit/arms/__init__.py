"""Arms: the ways of answering a task. See :mod:`kit.arms.base` for the contract, :mod:`kit.arms.registry` for
how backends are found (the ``kit.arms`` entry-point group, the kit's own included) and :mod:`kit.arms.options`
for their typed options."""

from kit.arms.base import Arm, Completion, Request
from kit.arms.options import ArmOptions, NoOptions
from kit.arms.registry import (
    GROUP,
    Backend,
    backend_of,
    check_options,
    get_arm,
    register_arm,
    registered_backends,
    unregister_arm,
)

__all__ = ["GROUP", "Arm", "ArmOptions", "Backend", "Completion", "NoOptions", "Request", "backend_of",
           "check_options", "get_arm", "register_arm", "registered_backends", "unregister_arm"]
