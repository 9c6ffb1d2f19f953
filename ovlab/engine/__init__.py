"""Training engine of the segmenter: data and augmentation, optimiser and schedule, checkpoints with
exact resume, DVCLive logging, DDP under torchrun, evaluation on any benchmark, prediction."""
