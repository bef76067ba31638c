"""Where and how torch runs: the device, the torchrun processes, the speed switches, and the
messages and progress bars of a run."""
