"""Thread TTLs: threads whose time-to-live ran out are deleted or pruned, once in the fleet."""
