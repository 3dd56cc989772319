"""Ground-truth labels and business outcomes, campaigns with holdouts, uplift analysis, business
dashboards, comments and sign-offs.
"""
