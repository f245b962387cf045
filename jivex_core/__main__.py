"""Allow ``python -m jivex_core`` as an alias for the ``jivex`` command."""

from jivex_core.cli import main

raise SystemExit(main())
