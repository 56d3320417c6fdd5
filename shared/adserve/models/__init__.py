"""CTR models: the feature encoder, the ONNX model, the registry and hot-swapping serving."""
