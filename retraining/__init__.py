"""Training recipes, schedules and triggers, runs, challenger evaluation."""
