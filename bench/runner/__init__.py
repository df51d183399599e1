"""Running one configuration: config → objects (main.py), the training loop (loop.py)."""
