"""``python -m beacon_orchestrator.cli``: the ``beacon`` command without its script."""

from . import main

main()
