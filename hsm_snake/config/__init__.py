"""The project config (hsm.yaml, v1's hsm_config.yaml) and the sweep file: loading, JSON Schema checks,
located errors, `validate`, and `init`'s scaffolding."""
