"""Settings chosen by the evidence grid's tuning (``bench/results/evidence``), per
``"task|size|method"``: the default preset runs its seeds at these instead of tuning
within its 30 minutes. Written by ``python bench/evidence.py --export-settings``."""

SOURCE = "bench/results/evidence"
SETTINGS: dict[str, dict[str, float]] = {
    "glue/sst2|100|asam": {"learning_rate": 0.0001, "rho": 0.5},
    "glue/sst2|100|baseline": {"learning_rate": 5e-05},
    "glue/sst2|100|sam": {"learning_rate": 0.0001, "rho": 0.02},
    "glue/sst2|100|sam_quarter": {"learning_rate": 0.0002, "rho": 0.02},
    "glue/sst2|250|asam": {"learning_rate": 0.0001, "rho": 0.5},
    "glue/sst2|250|baseline": {"learning_rate": 0.0001},
    "glue/sst2|250|sam": {"learning_rate": 0.0001, "rho": 0.05},
    "glue/sst2|250|sam_quarter": {"learning_rate": 0.0002, "rho": 0.05},
    "superglue/cb|100|asam": {"learning_rate": 0.0002, "rho": 0.5},
    "superglue/cb|100|baseline": {"learning_rate": 0.0002},
    "superglue/cb|100|sam": {"learning_rate": 0.0002, "rho": 0.02},
    "superglue/cb|100|sam_quarter": {"learning_rate": 0.0002, "rho": 0.02},
    "superglue/cb|250|asam": {"learning_rate": 0.0001, "rho": 0.5},
    "superglue/cb|250|baseline": {"learning_rate": 0.0001},
    "superglue/cb|250|sam": {"learning_rate": 0.0001, "rho": 0.02},
    "superglue/cb|250|sam_quarter": {"learning_rate": 0.0001, "rho": 0.05},
    "superglue/rte|250|asam": {"learning_rate": 0.0001, "rho": 1.0},
    "superglue/rte|250|baseline": {"learning_rate": 0.0001},
    "superglue/rte|250|sam": {"learning_rate": 0.0001, "rho": 0.05},
    "superglue/rte|250|sam_quarter": {"learning_rate": 0.0001, "rho": 0.05},
}
