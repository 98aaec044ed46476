import sys

from stiffml.main import main

sys.exit(main())
