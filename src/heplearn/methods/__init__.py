"""Advanced techniques on the trainer: reweighting, unfolding, decorrelation, domain adaptation,
anomaly detection, weak supervision, fast simulation (one module per technique)."""
