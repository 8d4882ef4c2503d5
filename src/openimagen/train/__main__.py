"""``python -m openimagen.train CONFIG [--resume PATH] [--max-steps N] [--out RUN_DIR]`` (what torchrun launches)."""
import sys

from openimagen.cli.train import main

sys.exit(main())
