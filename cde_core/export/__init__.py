"""Export to ONNX (and TensorRT engines from the ONNX)."""
