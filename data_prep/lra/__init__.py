"""Long Range Arena datasets (paper Appx. D.1; spec/data.md "LRA archive" ... "Pathfinder")."""
