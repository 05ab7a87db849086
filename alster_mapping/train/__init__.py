"""Training the ALSTER pipeline (``alster train``): 2D pre-training, then joint sequential training."""
