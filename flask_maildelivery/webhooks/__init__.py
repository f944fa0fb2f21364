"""Provider webhooks: one adapter module per provider, shared logic in :mod:`.base`."""
