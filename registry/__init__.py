"""Registered models, versions, artifacts, signatures, aliases/stages, promotion requests, approval
policies and gates.
"""
