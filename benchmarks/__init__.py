"""coldkit's benchmarks: ``python -m benchmarks.run [--quick] [--device cpu|cuda] [--out PATH]``
measures on the machine it runs on and rewrites ``docs/performance.md``."""
