"""The edit workload's models. `edit`: the workload and its executor; `models`: choosing and checking a model;
`qwen`: what every Qwen-Image-Edit model shares; `tiny`, `full`: random:tiny and random:full. Importing this
package imports nothing heavy; the modules import torch, transformers and diffusers themselves.
"""
