"""``python -m initlab``: the same commands as the ``initlab`` console script."""

from .cli import main

raise SystemExit(main())
