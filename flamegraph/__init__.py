"""Flame graphs from folded stacks: parse -> merge -> layout -> color -> SVG.

Stands alone: nothing here imports `profiler`.
"""
