"""Long Range Arena datasets (paper Appx. D.1): ListOps, Text, Retrieval, Image, Pathfinder,
Path-X; data_prep/README.md says where each comes from."""
