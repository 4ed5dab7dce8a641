from cortex_gateway.cli import main

raise SystemExit(main())
