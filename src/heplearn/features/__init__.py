"""Representations of jets: per-particle features, pairwise features and jet images."""
