"""Model registry: Every write and side effect: keyword-only, typed functions named <entity>_<action>."""
