"""Monitoring: DRF views, one per operation, with nested Input/Output serializers."""
