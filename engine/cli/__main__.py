"""`python -m wren.engine.cli`, as the `wren` script."""
import sys

from wren.engine.cli import main

sys.exit(main())
