import sys

from greentop._entry import main

sys.exit(main())
