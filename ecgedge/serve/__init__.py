"""Serving an export to many streams: a Triton Inference Server in front of the model.

``ecgedge export --triton`` writes a Triton model repository (:mod:`ecgedge.export.triton`);
``ecgedge serve`` (:mod:`ecgedge.serve.pytriton_server`) serves an export on CPU through PyTriton's bundled Triton;
``ecgedge stream --server grpc://HOST:PORT`` sends its windows to either
(:mod:`ecgedge.runtime.triton_runner`).
"""
