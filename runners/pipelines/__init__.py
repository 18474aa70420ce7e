"""The edit workload's models: the workload itself (`edit`), random:tiny (`tiny`), random:full (`full`), and a
GPU smoke/timing script (`smoke`). Importing this package imports nothing heavy; the modules import torch,
transformers and diffusers themselves.
"""
