"""Offline model building: a numpy factorization machine, its metrics and its ONNX export.

Nothing here is imported by the serving path; ``onnx`` is needed only by ``onnx_export``.
"""
