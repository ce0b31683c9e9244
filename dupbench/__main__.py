from dupbench.cli import main

raise SystemExit(main())
