"""Generation and restoration: priors over x_T and sampling from them (paper §5), the generation
stage, and ``coldkit restore`` for files that arrive degraded."""
