import sys

from stiffml.cli import main

sys.exit(main())
