from skilltrain.cli import main

raise SystemExit(main())
