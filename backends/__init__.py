"""Built-in backends. Each module registers itself through the ``register_backends`` hook."""
