"""syncbench: measure where the time goes when a diffusion workload runs on many devices."""

__version__ = "0.1.0"
