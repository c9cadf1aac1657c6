"""What every layer shares: user-facing errors, terminal output, typed config fields, run-directory
files and atomic writes, guarded `module:attribute` imports, TensorFlow's log filter.

Nothing here imports another part of cbrun or any TensorFlow.
"""
