from aevb.entry import console

raise SystemExit(console())
