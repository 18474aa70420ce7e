"""`bench-torchrun`: torchrun itself (`torch.distributed.run`, every argument and behaviour its own), except
that a rendezvous that fails — nobody answers at the endpoint within the join timeout, or it refuses the
connection — is one red line and exit code 2 instead of torchrun's 40-line traceback.

    bench-torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint head:29500 \\
        --rdzv-conf join_timeout=120 -m bench run --mode all

It does not check anything else: the workers it starts are `bench run` as under plain torchrun.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    args = get_args_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        torchrun(args)
    except RendezvousError as e:
        timeout = dict(kv.split("=", 1) for kv in args.rdzv_conf.split(",") if "=" in kv).get("join_timeout", "600")
        why = f": {' '.join(str(e).split())}" if str(e) else ""
        red = ("\033[1;31m", "\033[0m") if sys.stderr.isatty() else ("", "")
        sys.stderr.write(f"{red[0]}error:{red[1]} the rendezvous at {args.rdzv_endpoint or '(no endpoint)'} failed "
                         f"({type(e).__name__}{why}); nobody answered within join_timeout={timeout} s, or it "
                         f"refused: is node 0 started, and --rdzv-endpoint its address?\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
