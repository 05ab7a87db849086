"""One training recipe per model family (``train/recipe.py`` says what a recipe provides)."""
