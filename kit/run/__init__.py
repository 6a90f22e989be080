"""Running arms over a task's items: the runner (every answer stored as it completes), the SQLite response store
that serves a re-run without calling the model (its locks between processes: :mod:`kit.run.locks`), spending caps,
and load sweeps (throughput as it would be served)."""
