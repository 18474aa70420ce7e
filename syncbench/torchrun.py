"""`bench-torchrun`: torchrun itself (`torch.distributed.run`, every argument and behaviour its own), except
that a rendezvous that fails — nobody answers at the endpoint within the join timeout, or it refuses the
connection — is one red line and exit code 2 instead of torchrun's 40-line traceback.

    bench-torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint head:29500 \\
        --rdzv-conf join_timeout=120 -m syncbench run --mode all

It does not check anything else: the workers it starts are `bench run` as under plain torchrun. The torch
side lives in `runners.launchers.torchrun.run_torchrun`; this module only words its error, as `bench` does.
"""

from __future__ import annotations

import sys

from bench.errors import BenchError


def main(argv: list[str] | None = None) -> None:
    from runners.launchers.torchrun import run_torchrun

    try:
        run_torchrun(sys.argv[1:] if argv is None else argv)
    except BenchError as e:
        red = ("\033[1;31m", "\033[0m") if sys.stderr.isatty() else ("", "")
        sys.stderr.write(f"{red[0]}error:{red[1]} {' '.join(str(e).split())}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
