"""Kubernetes operator for Together AI dedicated inference endpoints."""
