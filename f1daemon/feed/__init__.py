"""Topic decoders: merge the feed's partial updates into state and derive events."""
