"""distillguard: find, stop and prove distillation attacks on a model served over an API."""

__version__ = "0.1.0"
