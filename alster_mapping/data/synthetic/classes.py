"""NYU40 class ids of the objects the synthetic world generator builds (see ``core.labels``)."""

# NYU40 ids used by the generator.
WALL, FLOOR, CABINET, BED, CHAIR, SOFA, TABLE, DOOR, WINDOW, BOOKSHELF = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
PICTURE, COUNTER, DESK, CURTAIN, CEILING, REFRIGERATOR = 11, 12, 14, 16, 22, 24
SHOWER_CURTAIN, TOILET, SINK, BATHTUB, OTHERFURNITURE = 28, 33, 34, 36, 39
# Small objects on furniture (clutter of the non-classic styles); not a ScanNet-20 class.
OTHERPROP = 40
