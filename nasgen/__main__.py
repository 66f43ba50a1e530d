import sys

from nasgen.cli import main

sys.exit(main())
