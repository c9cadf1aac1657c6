"""Components of `data:`, one module per source: each loads its data and splits it into a
`Dataset` (`base.py`) that every model and callback reads the same way.
"""
