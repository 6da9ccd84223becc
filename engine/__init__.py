"""Wren's engine: native kernels, thread pool, CPU topology, and (later) model loading and generation.

Nothing here imports Qt; the window and the command line are two front ends on this package.
"""
