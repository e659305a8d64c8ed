"""What the two-process tests start under torchrun: `python -m model.cli`, then a check that the command left
no module alive, since FSDP2's modules hold process groups that the interpreter's exit must not be the one to
free (a gloo group freed then can abort the process after a run that succeeded)."""

import gc
import sys

from torch import nn

from model.cli import main

if __name__ == "__main__":
    status = main(sys.argv[1:])
    left = sorted({type(o).__name__ for o in gc.get_objects() if isinstance(o, nn.Module)})
    if left:
        print(f"still alive after the command: {', '.join(left)}", file=sys.stderr)
    sys.exit(status or (3 if left else 0))
