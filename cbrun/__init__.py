"""cbrun: a command-line experiment runner for Keras 3 on TensorFlow, driven by YAML."""

__version__ = "0.1.0"
