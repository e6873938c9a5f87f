"""Apptainer images of dnarch-repro: the image table (`images`), the recipe generator
(`render`) and the in-image self-test (`selftest`). See containers/README.md."""
