"""Scoring what a model does on its own: free runs of learned fields and window models
(``rollout``), the free-run evaluation callback and prediction files (``free_run``), accuracy
measures in physical units (``metrics``) and the benchmark's figures (``plots``)."""
