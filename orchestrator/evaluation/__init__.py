"""Evaluation: prompt suites, pixel-art metrics (pure functions), scoring of image folders, generation of a run's
checkpoints (GPU side, imports torch lazily) and contact sheets.

* :mod:`~orchestrator.evaluation.metrics` — the metrics, each "lower is better";
* :mod:`~orchestrator.evaluation.suites` — prompt suites in ``kohya_configs/prompt_suites/*.toml``;
* :mod:`~orchestrator.evaluation.scoring` — score a folder of images, record it as an evaluation;
* :mod:`~orchestrator.evaluation.generate` — generate a suite for each checkpoint of a run and record the scores;
* :mod:`~orchestrator.evaluation.sheet` — contact sheet PNG (rows = epochs, columns = prompts).
"""
