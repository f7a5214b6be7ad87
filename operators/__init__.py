"""caffe2lite's built-in operators: one small module per operator (or family).

Every module here is imported by ``caffe2lite.runtime.registry.load_operator_packages``
the first time the registry is consulted; each registers its schema(s) and
kernel(s) at import.  There is no central list to update.
"""
