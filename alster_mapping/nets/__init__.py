"""Neural network models of the mapping pipeline (ALSTER, ../papers/alster.md, section 3).

Sub-packages and modules are imported explicitly by their users (``nets.sparse``,
``nets.unet3d``, ...) so that importing ``alster_mapping.nets`` stays cheap and never pulls
in an optional backend such as MinkowskiEngine.
"""
