"""Training any LatentModel: `trainer` is the loop, `step` one Adam step however it runs, `faults`
what stops or rolls back a run, `state` what a checkpoint holds. Nothing here knows a model."""
