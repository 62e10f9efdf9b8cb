"""aico's companion backend: a local HTTP service over ``AsyncMemoryManager``."""
