"""A report run as a declared graph of stages over one run folder.

- :mod:`~kit.pipeline.folder` — the run folder: typed tables and records, its status, and :class:`Stage`, the
  declaration of what a stage reads and writes (enforced: a stage works through ``folder.scoped(STAGE)``).
- :mod:`~kit.pipeline.provenance` — the run record: what ran (experiment, revision, versions), typed and
  versioned, written once by the prepare stage and read by the report.
- helpers the stages share, below them: :mod:`~kit.pipeline.arming` (which arm answers an option, the privacy
  hook), :mod:`~kit.pipeline.pricing` (what answers cost), :mod:`~kit.pipeline.scores` (per-item scores, the
  floor), :mod:`~kit.pipeline.looks` (the verdict's questions on confidence sequences),
  :mod:`~kit.pipeline.outputs` (typed readers of what stages wrote), :mod:`~kit.pipeline.selection` (prompt
  choice on the dev split).
- the stages, in flow order, none importing another: :mod:`~kit.pipeline.prepare` (prepare, finetune),
  :mod:`~kit.pipeline.answers`, :mod:`~kit.pipeline.quality`, :mod:`~kit.pipeline.costs`,
  :mod:`~kit.pipeline.verdict`.
- the drivers on top: :mod:`~kit.pipeline.runner` (the graph, its order, the answers of a fixed run) and
  :mod:`~kit.pipeline.sequential` (answers and quality looks round by round, ``sequential:``); beside them
  :mod:`~kit.pipeline.plan` (before a run: the items and labels each decision needs, from a pilot or assumptions).
"""
