import sys

from ovlab.experiments.cli import main

sys.exit(main())
