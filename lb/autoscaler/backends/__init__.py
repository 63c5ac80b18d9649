"""Scaling backends: how the autoscaler adds and removes workers."""
