"""Tasks: a model, an infinite seeded batch stream, a loss and an evaluation (see base.Task)."""
