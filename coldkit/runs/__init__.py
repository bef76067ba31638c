"""The run folder: its layout and metadata, opening a trained run, its lock, checkpoints,
TensorBoard events, and the context every stage of a run is handed."""
