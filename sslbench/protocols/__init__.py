"""Evaluation protocols, one per file; each reads frozen features through an EvalContext."""
