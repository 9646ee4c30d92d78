"""Export: ONNX graphs with metadata (onnx_export, layout in onnx_metadata) and TensorRT engines built
from them (tensorrt_engine), cached by engine_cache. onnx/onnxruntime/tensorrt are imported lazily."""
