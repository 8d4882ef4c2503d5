import sys

from openimagen.cli.main import main

sys.exit(main())
