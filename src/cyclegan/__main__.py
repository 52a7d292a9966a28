"""`python -m cyclegan` is the `cyclegan` command."""

from cyclegan.cli import main

raise SystemExit(main())
