"""Where and how computations run: devices and precision, torch.compile, CUDA graphs, torchrun
processes, and the process-wide settings the `aevb` command makes. Nothing here knows a model."""
