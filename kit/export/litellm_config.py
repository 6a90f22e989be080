"""The routing as a LiteLLM proxy/Router configuration (``config.yaml``), the router many teams already run.

Each routed task becomes a ``model_name`` (the task's name) whose deployment is the chosen option's endpoint
(``openai/<model>`` at its ``api_base``, the key read by LiteLLM from ``os.environ/<VAR>``, never written); the
reference is a second model name, ``<task>/fallback``, that ``router_settings.fallbacks`` sends a failed call to.
LiteLLM routes by model name, not by an answer's confidence: for a hybrid the config deploys the local option
with the reference as its fallback on errors, and writes τ and the escalation target into ``model_info`` —
escalating below τ needs the kit's router (:mod:`kit.export.router`), which the export writes beside it.

>>> config = litellm_config(routing)                       # doctest: +SKIP
>>> config["model_list"][0]["model_name"]                  # doctest: +SKIP
'snips-intents'
"""

from __future__ import annotations

from typing import Any

from kit.export.routing import Endpoint, Routing, TaskRoute

FALLBACK_SUFFIX = "/fallback"


def _deployment(name: str, endpoint: Endpoint, route: TaskRoute, role: str) -> dict[str, Any]:
    params: dict[str, Any] = {"model": f"openai/{endpoint.model}", "api_base": endpoint.base_url,
                              "max_tokens": route.max_tokens, "temperature": 0}
    # LiteLLM reads "os.environ/NAME" as the value of that variable; a local server takes any key
    params["api_key"] = f"os.environ/{endpoint.api_key_env}" if endpoint.api_key_env else "none"
    info: dict[str, Any] = {"kit_option": endpoint.option, "kit_role": role, "kit_prompt": route.prompt,
                            "kit_identity": {k: str(v) for k, v in endpoint.identity.items()},
                            "kit_third_party": endpoint.third_party}
    if role == "chosen" and route.tau is not None:
        info.update(kit_tau=route.tau, kit_escalate_to=route.escalate_to,
                    kit_note="LiteLLM does not route on confidence: escalation below tau needs the kit's router "
                             "(router.py); here the reference answers only when this deployment fails")
    return {"model_name": name, "litellm_params": params, "model_info": info}


def litellm_config(routing: Routing, *, num_retries: int = 2) -> dict[str, Any]:
    """The LiteLLM proxy configuration of ``routing``: ``model_list``, ``router_settings`` (fallbacks to the
    reference) and ``litellm_settings``. Write it as YAML for ``litellm --config``, or pass ``model_list`` and
    ``fallbacks`` to ``litellm.Router``."""
    models, fallbacks = [], []
    for name, route in routing.tasks.items():
        models.append(_deployment(name, routing.endpoints[route.first], route, "chosen"))
        if route.fallback != route.first:
            models.append(_deployment(name + FALLBACK_SUFFIX, routing.endpoints[route.fallback], route, "fallback"))
            fallbacks.append({name: [name + FALLBACK_SUFFIX]})
    return {"model_list": models,
            "router_settings": {"fallbacks": fallbacks, "num_retries": num_retries},
            "litellm_settings": {"drop_params": True}}
