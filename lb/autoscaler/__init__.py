"""The autoscaler: a pure policy, a loop that observes and acts, and scaling backends."""
