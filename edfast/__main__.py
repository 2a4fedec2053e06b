"""``python -m edfast``: the ``edfast`` command (also what ``torchrun -m edfast`` and
``edfast train --nproc N`` start in each process)."""

import sys

from edfast.cli import main

sys.exit(main())
