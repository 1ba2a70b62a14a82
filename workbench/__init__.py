"""Meta-Learning Workbench: meta-train few-shot learners, watch them adapt, export them.

    import workbench
    model = workbench.load_model("runs/maml-sinusoid/model.safetensors")
    adapted = model.adapt(x_support, y_support)   # numpy (K, 1) arrays
    y = adapted.predict(x)                        # numpy (Q, 1)
"""
__version__ = "0.1.0"


def load_model(path):
    """Load a model bundle written by ``workbench train`` (or File → Export model).

    Only a regular file is read (never a FIFO or a device), its metadata is validated and bounded before
    anything is allocated, and nothing is unpickled: any problem raises a one-line
    :class:`workbench.core.errors.BundleError` naming the file, the key and the value."""
    from workbench.services.bundle import load_bundle

    return load_bundle(path)


__all__ = ["__version__", "load_model"]
