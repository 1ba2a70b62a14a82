from workbench.cli import main

if __name__ == "__main__":  # guarded: the app's trainer process (spawn) re-imports the main module
    raise SystemExit(main())
