"""Reading run directories and turning them into leaderboards, statistics, plots and a report."""
