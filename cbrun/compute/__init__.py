"""How one run uses the machine: the `distribution:` strategy and the speed settings of
`training:` (precision, the tf.data input pipeline). Sections are light; TensorFlow is imported
only when a strategy, policy or pipeline is built.
"""
