"""Components of `callbacks:`, one module each: a params model registered with a factory that
builds the Keras callback. `base.py` holds what they share (the params base, `BuildContext`).
Factories import Keras when called, so listing and validation stay light.
"""
