"""The composition root: the HTTP app assembled, `creditgate serve`, the worker, the demo."""
