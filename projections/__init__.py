"""The read side: views folded from events, their runner, rebuild and verify."""
