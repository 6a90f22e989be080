"""The decision report: experiment, run folder, stages, views, plots, the stand-in server and rendering."""
