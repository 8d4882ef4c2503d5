"""Faster generation without changing what a stage computes: exported graphs (ONNX Runtime), ...

Every option here is a load-time transform of a stage's network F (the denoiser contract and the samplers stay
as they are): it replaces ``stage.denoiser.net`` with something that computes the same function faster.
"""
