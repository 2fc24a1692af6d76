"""The benchmark scripts (run each as ``python bench/<name>.py``) and their shared
helpers (``bench.timing``). A package so that tests can ``from bench import timing``."""
