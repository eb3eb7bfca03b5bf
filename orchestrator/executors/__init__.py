"""Where a run's trainer process runs: locally (this module's `local`), or remotely through a worker."""
