"""syncbench's command line, the top floor: `bench` (`syncbench.cli`) and `bench-torchrun`
(`syncbench.torchrun`); `python -m syncbench` is `bench`, which is what torchrun starts on every node."""
