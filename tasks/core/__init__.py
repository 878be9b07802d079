"""What every stage shares: the stage seam and cache keys, typed results, recipe machinery, storage, Dask, jobs."""
