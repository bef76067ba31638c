"""Training: the trainer (loss, EMA, checkpoints, exact resume) and the training stage of a run."""
