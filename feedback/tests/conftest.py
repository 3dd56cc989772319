from feedback.tests.fixtures import assigned, campaign, make_campaign  # noqa: F401
