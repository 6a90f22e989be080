"""Running arms over a task's items: the runner, the response store and spending caps."""
