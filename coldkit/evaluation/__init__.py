"""Evaluation and judging: Table 1 metrics, the evaluation stage, the run's reports and
artefacts, the generation judge, and ``coldkit compare``."""
