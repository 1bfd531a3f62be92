from aevb.cli import console

raise SystemExit(console())
