"""The decision report, read from a run folder the stages (:mod:`kit.pipeline`) wrote; it computes no statistic.

- :mod:`~kit.report.views`: the verdicts, the summary and every table and statement the report shows, escaped, and
  the manifest read from the run record (:mod:`kit.pipeline.provenance`);
- :mod:`~kit.report.plots`: the figures, readable at eight options;
- :mod:`~kit.report.render`: ``kit report`` — papermill runs the stages' notebooks in the declared order into one
  run folder, nbconvert renders the last one to HTML.
"""
