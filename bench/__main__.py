"""`python -m bench ...`: the CLI (what `torchrun -m bench run ...` starts on every node)."""

from bench.cli import main

main()
