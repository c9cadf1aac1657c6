"""One run's life: build data, model and callbacks from a checked config, fit with safeguards and
safe interrupts, keep per-epoch state for resume, evaluate, predict, and record it all in the
run directory. This is the layer that imports TensorFlow.
"""
