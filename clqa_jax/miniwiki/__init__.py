"""The generator of the embedded mini encyclopedia (`clqa_jax/resources/miniwiki`): demo, test
and benchmark data, not part of the synthetic-data pipelines (`clqa_jax.synth`) that read it."""
