"""The model zoo: one module per architecture, found through ``heplearn.models.registry``."""
