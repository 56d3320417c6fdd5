"""Production wiring, one module per function, so each function imports only what it runs.

Each builds a function's domain objects from its settings and real AWS clients (Record, for one, never
imports numpy or onnxruntime).
"""
