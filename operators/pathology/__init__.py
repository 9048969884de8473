"""Digital pathology operators: slide tiling, Canny filtering, pyramid stitching, registration."""
