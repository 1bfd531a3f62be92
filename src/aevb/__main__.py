from aevb.cli import main

raise SystemExit(main())
