"""``torchrun --nproc_per_node=N -m nasgen.distributed``: the entry point of the command
``nasgen.cli.distributed`` (an entry point, like ``nasgen/__main__.py``, may import the CLI)."""

import sys

from nasgen.cli.distributed import main

sys.exit(main())
