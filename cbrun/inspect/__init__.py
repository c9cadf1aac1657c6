"""Living with many runs, from their small files: list (`runs`), `show`, `compare`, the
learning-curve plots and `report.html`, and TensorBoard over them (`board`). No TensorFlow.
"""
