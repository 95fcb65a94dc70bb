"""The benchmark harness (bench/README.md): ``python bench/run.py [--quick|--full]``."""
