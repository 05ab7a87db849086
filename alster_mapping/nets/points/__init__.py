"""Point-set parts shared by the point-based families (ASIS, BAN, later SAFNet): PointNet++
operations (``ops``) and the single-scale-grouping backbone (``pointnet2``)."""
