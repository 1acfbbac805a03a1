from pantheon_trainer.cli import main

raise SystemExit(main())
