"""The experiment: which tasks, one reference option and any number of candidates, and the user's constraints.

An experiment is a YAML file (``notebooks/params/*.yaml``; ``kit report --experiment FILE``) whose keys are
also the notebooks' parameters. Every option is a typed record: a short name used in every table and plot,
what answers (an arm spec, or a fine-tune to train), where it runs — declared, never guessed from an address —
and what it costs (a hosted price, or a machine for self-hosted options). The whole experiment is checked
before any model is called; every problem names the file, the key, the option and the fix.

One concern a module:

- :mod:`~kit.experiment.schema`: every key with its type, default, range and meaning, declared once;
- :mod:`~kit.experiment.messages`: pydantic's errors turned into one-line errors worded from those declarations;
- :mod:`~kit.experiment.load`: reading the YAML (UTF-8, no key twice) and ``-p KEY VALUE`` overrides;
- :mod:`~kit.experiment.checks`: the checks across keys and the checked :class:`Option` and :class:`Experiment`;
- :mod:`~kit.experiment.readme`: the README's table of keys (:func:`schema_table`).

>>> exp = Experiment.from_mapping(yaml.safe_load(EXAMPLE), source="example")
>>> [(o.name, o.where.value) for o in exp.options]
[('API', 'third-party'), ('SmolLM2', 'self-hosted')]
>>> exp.reference.name
'API'
>>> Experiment.from_mapping({**yaml.safe_load(EXAMPLE), "alpha": 0.7}, source="example")  # doctest: +ELLIPSIS
Traceback (most recent call last):
kit.errors.ConfigError: example: `alpha:` 0.7 is out of range (above 0 and below 0.5). Fix: ...
"""

from __future__ import annotations

import yaml  # noqa: F401  (the example above)

from kit.arms.standin import STANDIN_MODEL
from kit.experiment.checks import Experiment, Option, read_experiment_file, runs_as
from kit.experiment.load import override_value
from kit.experiment.readme import schema_table
from kit.experiment.schema import EXAMPLE, ExperimentFile, FinetuneSpec, HostedPrice, Machine, MachineSpec, \
    OptionSpec, SequentialSpec, SweepSpec, UpkeepSpec, Where

__all__ = ["EXAMPLE", "STANDIN_MODEL", "Experiment", "ExperimentFile", "FinetuneSpec", "HostedPrice", "Machine",
           "MachineSpec", "Option", "OptionSpec", "SequentialSpec", "SweepSpec", "UpkeepSpec", "Where", "override_value",
           "read_experiment_file", "runs_as", "schema_table"]
