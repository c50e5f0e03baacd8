"""Measurement: NVML (gpu.py, the only NVML user), RAPL, energy windows, statistics."""
