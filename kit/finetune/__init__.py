"""Local fine-tuning: LoRA on a task's train split, exported as a GGUF adapter that llama.cpp loads.

>>> result = finetune("snips-intents", max_steps=40)          # doctest: +SKIP
>>> result.arm_spec                                            # doctest: +SKIP
"""

from kit.finetune.adapters import (DEFAULT_BASE, DEFAULT_LR, DEFAULT_STEPS, DEFAULT_TARGETS, FinetuneResult,
                                   Precision, finetune, load_result, training_data_hash)

__all__ = ["DEFAULT_BASE", "DEFAULT_LR", "DEFAULT_STEPS", "DEFAULT_TARGETS", "FinetuneResult", "Precision", "finetune",
           "load_result", "training_data_hash"]
