"""What the backends run before they time anything: the ONNX export (``onnx``), the deploy graph
with the postprocessor inside it (``deploy``) and the TensorRT engine build (``tensorrt_engine``).

A sub-package, so the backend registry (which takes this package's public modules as the
built-in backends) never mistakes an exporter for a backend.
"""
