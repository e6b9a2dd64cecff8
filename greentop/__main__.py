import sys

from greentop.cli import main

sys.exit(main())
