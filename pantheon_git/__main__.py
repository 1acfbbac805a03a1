from pantheon_git.cli import main

raise SystemExit(main())
