"""Inference: weights I/O (checkpoint), classifier backends (torch, ONNX Runtime), Recognizer.

Nothing is imported here so that the ONNX Runtime path never loads torch.
"""
