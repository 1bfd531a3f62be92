"""What a trained run shows: `figures` decides what to draw and computes it, `plots` draws arrays
into files with matplotlib (imported inside its functions, so `import aevb` never loads it)."""
