"""Components of `model:` and `compile:`: model builders (one module each), the output head and
default loss per task, the Keras layers cbrun inserts (`layers.py`, the one module that imports
Keras when imported), and the optimizer section.
"""
