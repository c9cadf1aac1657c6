"""The experiment file: YAML read with line numbers and `--set` overrides, the schema of every
section, the checks across sections that run before any training, and the error messages that
point back at file, line and key path. Also what is derived from the schema alone: the
component listings (`list-callbacks`) and the starter templates (`cbrun init`).

Light: never imports TensorFlow or Keras.
"""
