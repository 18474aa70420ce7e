"""`python -m syncbench ...`: the CLI (what `torchrun -m syncbench run ...` starts on every node)."""

from syncbench.cli import main

main()
