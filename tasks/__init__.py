"""keel's stages, one package per stage (ingest, curate, tokenize, train, evaluate, track, govern), the shared
core, and the recipe that configures them all (tasks/recipe.py)."""
