"""The pipeline of a report run, in flow order: the run folder and the stages that fill it."""
