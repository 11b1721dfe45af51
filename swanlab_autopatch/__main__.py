"""`python -m swanlab_autopatch doctor|runs|compare`."""
import sys

from swanlab_autopatch.cli import main

sys.exit(main())
