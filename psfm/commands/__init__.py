"""One module per ``psfm`` subcommand: a typed schema, a pure ``run(cfg)``, and a Hydra ``main``."""
