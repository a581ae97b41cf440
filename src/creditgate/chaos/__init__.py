"""Proof under faults: the chaos suite behind `creditgate chaos`."""
